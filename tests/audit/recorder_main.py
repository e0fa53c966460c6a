"""A child process for the multi-process tests: records evaluations and feedback, then either
closes cleanly or dies without flushing. Prints the hook instances and card uuids it recorded.

    python recorder_main.py DB_URL SPOOL_DIR COUNT {close|crash} [START_AT_EPOCH]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import orjson
from sqlalchemy import create_engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
import factories as f  # noqa: E402

from cds.audit import open_store  # noqa: E402
from cds.config import Settings  # noqa: E402


def main() -> None:
    db_url, spool_dir, count, mode = sys.argv[1:5]
    start_at = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    store = open_store(Settings(database_url=db_url, spool_dir=Path(spool_dir)))
    if mode == "crash":
        # The database is gone for this process: everything stays in its spool when it dies.
        store.writer.engine = create_engine(f"sqlite:///{__file__}/not/a/dir.sqlite3")
    time.sleep(max(0.0, start_at - time.time()))  # line up with the sibling process
    instances, card_uuids = [], []
    for i in range(int(count)):
        ev = f.evaluation("KAP-CI-010", "KAP-DR-001")
        instance = f"{os.getpid()}-{i}"
        store.record_evaluation(
            service_id="kap-order-sign",
            hook="order-sign",
            hook_instance=instance,
            patient_id=f"p{i}",
            data=f.patient_data(),
            evaluation=ev,
            latency_ms=1.0,
        )
        store.record_feedback(
            service_id="kap-order-sign", items=[f.feedback_item(ev.cards[0].uuid)]
        )
        instances.append(instance)
        card_uuids.extend(c.uuid for c in ev.cards)
    sys.stdout.write(orjson.dumps({"instances": instances, "cards": card_uuids}).decode())
    sys.stdout.flush()
    if mode == "crash":
        os._exit(0)  # no close(), no flush: like a kill -9
    store.close(timeout=60)


if __name__ == "__main__":
    main()
