"""Export and import of all user data as one JSON document, so no instance can lock a library in.

The document holds accounts (with their password hashes, so people keep signing in), votes,
comments (threaded), collections with their items, follows, API tokens, submissions, digest
subscribers with their saved searches, feedback and send history. Everything is keyed by
natural keys — usernames, emails, arXiv ids, (user, slug) — never by this instance's row ids,
and import is idempotent: records already present are left as they are, so importing the same
file twice, or into an instance that already has some of it, changes nothing the second time.
Papers are referenced by arXiv id; the document carries each referenced paper's basic metadata
so an import into an empty catalog still keeps every library whole.
"""

from paperfeed.userdata.common import FORMAT, VERSION, FormatError
from paperfeed.userdata.dump import export_all
from paperfeed.userdata.load import ImportStats, import_all

__all__ = ["FORMAT", "VERSION", "FormatError", "ImportStats", "export_all", "import_all"]
