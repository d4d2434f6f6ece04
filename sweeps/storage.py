"""Where a study lives: an Optuna RDB storage with heartbeats, so a killed worker's trial is retried.

Default: sqlite:///<runs>/sweeps/optuna.db, safe for several workers on one node (sqlite locks the
file; each writer waits up to a minute for the lock). On a cluster pass any RDB URL the nodes
reach (postgresql://user@host/db, mysql+pymysql://...). sqlite on a network filesystem (NFS,
Lustre, GPFS, CIFS, ...) is refused: its POSIX locks are not reliable there, and several workers
then corrupt the file or fail with "database is locked".

Killed workers. Every running trial's worker writes a heartbeat to the storage every `heartbeat`
seconds (Optuna's RDB heartbeat table). A worker that starts a trial, or waits for the others
to finish, first fails every RUNNING trial whose heartbeat is older than 3 x `heartbeat`
(optuna.storages.fail_stale_trials) and queues a copy of it (same parameters, marked with the
original's number) unless it was retried `max_retries` times already. The copy has the same
config, hence the same run id: it resumes from the dead trial's last checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from sweeps.study import SweepError
from tdsclip.mirror import MirrorError, sqlite_path
from tdsclip.runstate import RunsFolder

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.sshfs",
        "9p",
        "afs",
        "panfs",
        "wekafs",
        "fuse.juicefs",
        "orangefs",
        "ocfs2",
        "gfs2",
    }
)
SCHEMES = ("sqlite", "postgresql", "mysql", "oracle", "mssql")


@contextmanager
def experimental_ok() -> Iterator[None]:
    """Optuna marks heartbeats, fail_stale_trials, the retry callback and TPE's constant liar as
    experimental; the sweeps rely on them knowingly, so their warnings are silenced here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def default_url(runs_dir: Path) -> str:
    return f"sqlite:///{(RunsFolder(runs_dir).sweeps / 'optuna.db').resolve()}"


def sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite URL, None for other storages."""
    try:
        return sqlite_path(url)
    except MirrorError:
        raise SweepError(
            f"--storage {url!r}: expected sqlite:///path/to/file.db (several workers need a file)"
        ) from None


def filesystem_of(path: Path, mounts: str | None = None) -> tuple[str, str]:
    """(filesystem type, mount point) of `path` from a mount table (/proc/self/mounts by default)."""
    if mounts is None:
        mounts = Path("/proc/self/mounts").read_text()
    path = Path(path).resolve()
    best = ("", "")
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        if (path == Path(point) or Path(point) in path.parents) and len(point) >= len(best[1]):
            best = (fields[2], point)
    return best


def check_url(url: str, mounts: str | None = None) -> str:
    """The URL if workers can share it; a SweepError naming the problem otherwise."""
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if scheme not in SCHEMES or "://" not in url:
        raise SweepError(f"--storage {url!r}: expected an RDB URL (sqlite:///file.db, postgresql://..., mysql://...)")
    database = sqlite_file(url)
    if database is not None:
        kind, point = filesystem_of(database, mounts)
        if kind in NETWORK_FILESYSTEMS or kind.startswith("nfs"):
            raise SweepError(
                f"--storage {url}: {point} is a {kind} network filesystem, where sqlite's locks are unreliable and "
                "several workers corrupt or lock the database; pass --storage postgresql://... or mysql://... "
                "(a server the nodes reach), or keep the sqlite file on a local disk"
            )
    return url


def open_storage(url: str, heartbeat: int = 60, max_retries: int = 2) -> RDBStorage:
    """The storage, heartbeats on: a trial silent for 3 x heartbeat seconds is failed and retried."""
    if heartbeat < 1 or max_retries < 0:
        raise SweepError(f"--heartbeat {heartbeat}, --max-retries {max_retries}: expected >= 1 and >= 0")
    database = sqlite_file(check_url(url))
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    with experimental_ok():
        storage = RDBStorage(
            url,
            engine_kwargs={"connect_args": {"timeout": 60}} if database is not None else None,
            heartbeat_interval=heartbeat,
            grace_period=3 * heartbeat,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                max_retry=max_retries, inherit_intermediate_values=True
            ),
        )
    if database is not None:
        _begin_immediate(storage.engine)
    return storage


def _begin_immediate(engine) -> None:
    """sqlite's default (deferred) transactions let two workers both read a WAITING trial and both
    take it; BEGIN IMMEDIATE takes the write lock first, so taking a trial is atomic (SQLAlchemy's
    recipe for pysqlite; server databases lock the row with SELECT ... FOR UPDATE instead)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, record) -> None:  # noqa: ARG001 - event signature
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while the storage set itself up predate the hooks
