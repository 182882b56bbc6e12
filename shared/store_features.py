"""The store's part for issue 13: per-request options, repeated URLs (aliases) and cancel.

A mixin of ``shared.store.Store`` like ``shared.store_deliveries``: it uses the store's
transaction helpers and dialect. The statements are in ``shared.store_sql``; the tables and
columns come from migration 0006. What else these features change (an alias takes its leader's
outcome in the leader's transaction; the counts) is in ``Store.create_request`` and
``shared.store_images``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from shared import store_sql as sql
from shared.database import Database
from shared.models import ProductRow
from shared.options import CompressionOptions, options_from_row
from shared.sql_dialect import DBAPICursor, Dialect
from shared.store_deliveries import first_row


def aliases_of(request_id: str, products: Sequence[ProductRow]) -> list[tuple[str, int, int]]:
    """(request_id, seq, leader_seq) for every slot whose URL repeats an earlier slot's."""
    leaders: dict[str, int] = {}
    rows = []
    seq = 0
    for product in products:
        for url in product.urls:
            leader = leaders.setdefault(url, seq)
            if leader != seq:
                rows.append((request_id, seq, leader))
            seq += 1
    return rows


class RequestFeatures:
    """Options, aliases and cancel."""

    dialect: Dialect
    _db: Database

    def request_options(self, request_id: str) -> CompressionOptions:
        row = first_row(self._db.fetch_all(sql.SELECT_OPTIONS, (request_id,)))
        if row is None:
            return CompressionOptions()
        return options_from_row(row["quality"], row["size_target"], row["format"], row["max_dimension"])

    def alias_seqs(self, request_id: str, leader_seq: int) -> list[int]:
        """The slots whose URL repeats the leader's; they take the leader's outcome."""
        return [int(row["seq"]) for row in self._db.fetch_all(sql.SELECT_ALIAS_SEQS, (request_id, leader_seq))]

    def cancel_request(self, request_id: str) -> bool:
        """Mark the request Cancelling and skip its unstarted images, in one transaction.

        True for the call that did it; False if the request is not Pending or Processing with
        images still pending (already cancelling, cancelled, or every image finished).
        """
        now = self.dialect.to_db(datetime.now(UTC))

        def work(cursor: DBAPICursor) -> bool:
            cursor.execute(sql.MARK_CANCELLING, (now, request_id))
            if cursor.rowcount <= 0:
                return False
            cursor.execute(sql.SKIP_UNSTARTED, (now, request_id))
            cursor.execute(sql.COUNT_SKIPPED_IMAGES, (max(cursor.rowcount, 0), now, request_id))
            return True

        return self._db.run(work, write=True)
