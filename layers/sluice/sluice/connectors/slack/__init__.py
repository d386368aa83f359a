"""Slack: one Markdown document per thread (or per channel and day) of the channels a bot is in.

Secret ``{"token": "xoxb-..."}``: a bot token with ``channels:history`` (``groups:history`` for
private channels), ``channels:read``/``groups:read`` (names and members), and ``users:read`` plus
``users:read.email`` when ``resolve_users`` is on. The bot must be a member of every channel.

Settings:
    channels                list of channel IDs (``C0123ABCD``, not names)
    api_url                 default ``https://slack.com/api`` (tests point it at a fake server)
    group_by                ``"thread"`` (default): a document per thread, a lone message being a
                            thread of one; ``"day"``: a document per channel and UTC day, replies
                            quoted under their parent
    oldest                  where the first run starts: an ISO date or time, or epoch seconds
                            (default: the whole history)
    lookback_days           how far back each run looks for new replies, edits of parents and
                            deleted threads (default 7, at most 90); it costs one history page per
                            200 messages in that window per run
    channel_members_as_acl  allow-list each document to the channel's members (default true)
    resolve_users           look users up with ``users.info`` (``users.list`` for a channel of more
                            than 100 members; cached per run): names in the text, and ``user:<email>``
                            principals (lower-cased) instead of ``user:<id>`` when the token may read
                            emails (default true)
    allowed_networks        CIDRs the HTTP client may reach although they are not public (tests)

How a run works, per channel: one scan of ``conversations.history`` (200 a page) from the cursor's
watermark, or ``lookback_days`` back if that is older, up to the run's start. A thread is rendered
(``conversations.replies``) when its parent, its latest reply or its parent's last edit is newer
than the watermark; other threads are left alone. When the scan is through, threads the cursor knows
within the window that history no longer listed are checked with ``conversations.replies``, and the
ones Slack answers ``thread_not_found`` for become Tombstones (in day mode: a day with no messages
left). Slack's ``ok: false, error: ratelimited`` is waited out like an HTTP 429 (``Retry-After``);
``invalid_auth``, ``not_in_channel``, ``channel_not_found``, ``missing_scope`` stop the run with a
SourceError naming the channel.

Cursor (JSON; a Checkpoint follows every history page, so a run resumes mid-channel):
    {"v": 1, "channels": {"C0123ABCD": {
        "watermark": "1718000000.000000",   # a finished scan saw everything up to here
        "known": ["1717990000.000100", ...],  # threads (days) within the lookback, for deletion checks
        "scan": {"id": ..., "oldest": ..., "latest": ..., "seen": [...], "done": [...]}  # while open
    }}}
``scan.latest`` moves down page by page (history is newest first), so a resumed scan asks for what
is older than the last page it finished; the watermark trails the scan's start by a minute (clock
skew), so a message of that last minute may be rendered again by the next run (an unchanged
document, which the runner does not land twice). ``known`` keeps the newest 4000 keys shared by the
channels (at least 200 each), which bounds the cursor's size and the deletion checks.

Limitations:
- Deleted messages are not in history and Slack reports no deletions: a deleted reply, or an edited
  reply, shows only when the thread is rendered again; a whole thread (or day) that disappears is
  removed only while it is within ``lookback_days``. ``complete_listing`` is false, so nothing else
  is ever swept.
- Channel membership is read when a document is rendered: someone who leaves a channel keeps access
  to its unchanged threads until they change (re-run from an empty cursor to refresh every ACL).
  Members of a public channel are fewer than the people who may read it: set
  ``channel_members_as_acl`` to false (and govern access elsewhere) to index it as open.
- Times and days are UTC. Files are listed by name, not downloaded.

The modules: ``api`` (the Web API: paging, ``ok: false``, rate limits, and the reads of history and
threads), ``people`` (channel names, members and users, cached per run), ``messages`` (what a message
is: shown or housekeeping, when it last changed), ``render`` (a thread or a day as a Markdown Item)
and ``connector`` (the settings, the scans and the cursor).
"""

from sluice.connectors.slack.connector import SlackConnector

__all__ = ["SlackConnector"]
