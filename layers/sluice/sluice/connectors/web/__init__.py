"""A web site, crawled from start URLs and/or sitemaps: HTML pages, and the text files and PDFs they link.

Settings::

    {"start_urls": ["https://docs.example.com/"],       pages the crawl starts from (depth 0)
     "sitemaps": ["https://docs.example.com/sitemap.xml"],  sitemaps or sitemap indexes, .xml or .xml.gz
     "same_site": true,          only the hosts of start_urls and sitemaps; a redirect elsewhere is not followed
     "include": ["/docs/", "re:\\\\.pdf$"],  when given, only URLs matching one of them are fetched
     "exclude": ["/docs/old/"],  URLs matching one of them are never fetched
     "max_depth": 2,             link hops from a start URL (0: the start URLs alone), at most 10
     "max_pages": 500,           URLs queued (each requested once) per pass, at most 5000
     "respect_robots": true,     robots.txt and <meta name="robots"> (see ``robots``)
     "allowed_networks": []}     CIDRs that are not public but may be reached (an intranet site)

``include``/``exclude`` entries are path prefixes (``"/docs/"``), or regular expressions after ``re:``
searched in the path and query (``"re:\\\\?page=\\\\d+$"``). A start URL must pass them. Every URL
(start, sitemap, link, redirect target) goes through the same checks: http or https, same site,
include/exclude, robots, then the HttpClient's SSRF guard on each request.

One pass visits the site breadth first: the start URLs, then what they link to, to ``max_depth``.
Pages listed in a sitemap are fetched but their links are not followed (the sitemap is the listing;
add start URLs to crawl from them too). A page is text/html (or XHTML), text/plain or a PDF; other
types are skipped, and links to images, scripts, archives and the like are not fetched at all. Links
come from ``<a href>`` (``rel="nofollow"`` skipped, fragments dropped, ``<base href>`` honoured);
``<link rel="canonical">`` on the same host names the item instead of the URL. Redirects are not
followed blindly: the target is queued like a link (same checks, same depth). An item's id is the
host (``-port`` when not the default), then the path (``index`` for one ending in ``/``, ``+q<hash>``
for a query): ``docs.example.com/guide/install``; the scheme is not part of it.

What a pass yields, per URL: an ``Item`` when the page is new or its body changed; ``Unchanged``
when the server answers 304 to a conditional GET, or sends the same body again; a ``Tombstone``
when a page that is linked or listed answers 404 or 410; nothing for a page that is skipped (it is
then swept by the runner after the pass, like a page no longer linked). A page that fails (5xx,
timeout) answers ``Unchanged`` when the last pass had it, so a hiccup deletes nothing. A start URL
or sitemap that fails stops the run instead (``SourceError``/``HttpError``; the cursor stays).
A ``Checkpoint`` follows every page; the one that ends a pass says ``ends_pass``.

Conditional GETs: a 304 carries no body, hence no links, so only pages whose links are not needed
are asked conditionally: pages at ``max_depth`` (sitemap pages among them) and non-HTML files. Other
pages are read in full and compared by digest (equal → ``Unchanged``). For the cheapest recrawl, list
the pages in a sitemap and set ``max_depth`` to 0.

The modules: ``settings`` (what an instance asks for), ``urls`` (the one form URLs are compared in,
and item ids), ``robots`` (robots.txt, its cache and Crawl-delay), ``sitemaps``, ``pages`` (what an
HTML page links to), ``cursor`` (the crawl's state) and ``connector`` (one pass).
"""

from sluice.connectors.web.connector import WebConnector

__all__ = ["WebConnector"]
