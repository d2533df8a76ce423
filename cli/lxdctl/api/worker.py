"""``python -m lxdctl.api.worker JOB_ID ATTEMPT``: run one claimed job (see ``jobs``)."""
import sys

from lxdctl.api.jobs import run_worker

if __name__ == "__main__":
    sys.exit(run_worker(int(sys.argv[1]), int(sys.argv[2])))
