"""A real single-node Slurm on localhost, from Debian's packages, for tests and for trying things.

    python -m slurm.localcluster up [--dir DIR]      # prints `export SLURM_CONF=...`; ~5 s
    python -m slurm.localcluster status [--dir DIR]
    python -m slurm.localcluster down [--dir DIR]

Everything lives in one state folder (default /tmp/tdsclip-slurm): slurm.conf, slurmdbd.conf, a
private munge key, a private MariaDB data directory, spool and state folders, logs and pid files.
The daemons (munged, mariadbd, slurmdbd, slurmctld, slurmd -N localhost) run as root on free
ports, so this cluster neither needs nor touches /etc/slurm, /run/munge or a system MariaDB, and
two state folders make two clusters. `up` starts from a clean slate every time: no saved jobs
(ids restart at 1) and a freshly created accounting database, so sacct never mixes records of
an earlier cluster. `down` cancels what still runs and stops the daemons by their pid files.

Slurm clients find the cluster through SLURM_CONF (`Cluster.environ`); sbatch exports the
submitting environment to jobs, so srun and submitit inside a job find it too.
Settings that matter (and why) are in `_slurm_conf`; ../shared/notes/environment.md has the story.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tdsclip.runlock import pid_running  # a zombie is dead: PID 1 here may never reap daemons

DEFAULT_DIR = Path("/tmp/tdsclip-slurm")
CLUSTER_NAME = "tdsclip"
LOW, HIGH = "low", "high"
"""Partitions: jobs in `high` preempt (requeue) jobs in `low`, which get USR2 and 20 s of grace."""
_DAEMONS = ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged")  # stop order
_DB = "slurm_acct_db"


class ClusterError(RuntimeError):
    """The local cluster could not be started or stopped; one line naming the daemon and its log."""


@dataclass(frozen=True)
class Cluster:
    state_dir: Path

    @property
    def conf(self) -> Path:
        return self.state_dir / "etc" / "slurm.conf"

    @property
    def environ(self) -> dict[str, str]:
        """What a process needs in its environment to use this cluster (sbatch, sacct, submitit)."""
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *command: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env={**os.environ, **self.environ}
        )
        if check and done.returncode != 0:
            raise ClusterError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-500:]}")
        return done


def _socket_dir(state_dir: Path) -> Path:
    """Unix sockets live in a short, world-traversable folder: munged refuses a socket whose
    folder others cannot enter (pytest's tmp folders are 0700), and socket paths are limited to
    108 bytes. One folder per state folder, so clusters do not share sockets."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
    return Path("/tmp") / f"tdsclip-slurm-{digest}"


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _pid_files(state_dir: Path) -> dict[str, Path]:
    run = state_dir / "run"
    return {name: run / f"{name}.pid" for name in _DAEMONS}


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _node_line(memory_fraction: float = 0.85) -> tuple[str, int, int]:
    """This machine's node definition (`slurmd -C`) named localhost, with ~85% of its memory."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    fields = dict(item.split("=", 1) for item in out.split())
    cpus, memory = int(fields["CPUs"]), int(int(fields["RealMemory"]) * memory_fraction)
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    topology = " ".join(f"{k}={fields[k]}" for k in keep if k in fields)
    return f"NodeName=localhost NodeAddr=127.0.0.1 {topology} RealMemory={memory} State=UNKNOWN", cpus, memory


def _slurm_conf(state_dir: Path, sockets: Path, ports: dict[str, int]) -> str:
    node, cpus, memory = _node_line()
    s = state_dir
    return f"""\
# Written by slurm/localcluster.py; rewritten at every `up`.
ClusterName={CLUSTER_NAME}
SlurmctldHost=localhost
SlurmctldPort={ports["slurmctld"]}
SlurmdPort={ports["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=10: a requeued job otherwise waits 121 s before it may start again.
AuthInfo=socket={sockets}/munge.socket,cred_expire=10
StateSaveLocation={s}/state/ctld
SlurmdSpoolDir={s}/state/slurmd
SlurmctldPidFile={s}/run/slurmctld.pid
SlurmdPidFile={s}/run/slurmd.pid
SlurmctldLogFile={s}/log/slurmctld.log
SlurmdLogFile={s}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in a container without systemd: track processes by their parents, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU={memory // cpus}
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=2
ReturnToService=2
# sacct (and so submitit's job states) needs accounting through slurmdbd.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort={ports["slurmdbd"]}
# For slurmdbd storage this "password" is the munge socket the controller authenticates through.
AccountingStoragePass={sockets}/munge.socket
JobCompType=jobcomp/none
MailProg=/bin/true
# A job in `high` requeues a job in `low`; the victim gets its --signal (USR2) when the 20 s grace
# starts (22.05's spelling; newer Slurm: PreemptParameters=send_user_signal).
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
KillWait=5
{node}
PartitionName={LOW} Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE GraceTime=20
PartitionName={HIGH} Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
"""


def _slurmdbd_conf(state_dir: Path, sockets: Path, ports: dict[str, int], password: str) -> str:
    return f"""\
# Written by slurm/localcluster.py; rewritten at every `up`.
AuthType=auth/munge
AuthInfo=socket={sockets}/munge.socket
DbdHost=localhost
DbdPort={ports["slurmdbd"]}
SlurmUser=root
PidFile={state_dir}/run/slurmdbd.pid
LogFile={state_dir}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports["mariadb"]}
StorageUser=slurm
StoragePass={password}
StorageLoc={_DB}
"""


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _last_line(log: Path | None) -> str:
    if log is None or not log.exists():
        return ""
    lines = log.read_text(errors="replace").strip().splitlines()
    return f"; {log} ends: {lines[-1] if lines else '(empty)'}"


def _wait(what: str, ready, timeout: float, log: Path | None = None, state_dir: Path | None = None) -> None:
    """Poll `ready` until it holds; fail at once if a daemon of state_dir has died meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if state_dir is not None and (dead := [name for name, pid in status(state_dir).items() if pid is None]):
            raise ClusterError(f"waiting for {what}: {dead[0]} died{_last_line(state_dir / 'log' / f'{dead[0]}.log')}")
        time.sleep(0.2)
    raise ClusterError(f"{what} not ready after {timeout:.0f} s{_last_line(log)}")


def _start(name: str, command: list[str], state_dir: Path, env: dict[str, str], timeout: float = 30) -> None:
    """Run a daemon's start command (it daemonises itself) and wait for its pid file."""
    log = state_dir / "log" / f"{name}.log"
    with open(state_dir / "log" / f"{name}.out", "ab") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout)
    if done.returncode != 0:
        raise ClusterError(
            f"{name} exited {done.returncode} at start; see {state_dir / 'log' / f'{name}.out'} and {log}"
        )
    pid_file = _pid_files(state_dir)[name]
    _wait(
        f"{name} (pid file {pid_file})", lambda: (pid := _pid(pid_file)) is not None and pid_running(pid), timeout, log
    )


def _start_mariadb(state_dir: Path, sockets: Path, port: int, password: str) -> None:
    """A private MariaDB on 127.0.0.1:port; its data directory is made once per state folder and
    the accounting database dropped at every start."""
    datadir = state_dir / "mysql"
    if not (datadir / "mysql").is_dir():
        shutil.rmtree(datadir, ignore_errors=True)
        with open(state_dir / "log" / "mariadb-install.log", "wb") as out:
            subprocess.run(
                [
                    "mariadb-install-db",
                    "--no-defaults",
                    f"--datadir={datadir}",
                    "--user=root",
                    "--auth-root-authentication-method=socket",
                    "--skip-test-db",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
            )
    sock = sockets / "mysql.sock"
    log = state_dir / "log" / "mariadbd.log"
    with open(state_dir / "log" / "mariadbd.out", "ab") as out:
        subprocess.Popen(
            [
                "mariadbd",
                "--no-defaults",
                f"--datadir={datadir}",
                "--user=root",
                f"--socket={sock}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={_pid_files(state_dir)['mariadbd']}",
                f"--log-error={log}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=64M",
                "--innodb-lock-wait-timeout=900",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    client = ["mariadb", "--no-defaults", f"--socket={sock}", "-u", "root"]
    _wait("mariadbd", lambda: subprocess.run([*client, "-e", "SELECT 1"], capture_output=True).returncode == 0, 60, log)
    sql = (
        f"DROP DATABASE IF EXISTS {_DB}; CREATE DATABASE {_DB}; "
        f"CREATE OR REPLACE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}'; "
        f"GRANT ALL ON {_DB}.* TO 'slurm'@'127.0.0.1';"
    )
    subprocess.run([*client, "-e", sql], capture_output=True, check=True, timeout=30)


def _stop_pid(name: str, pid_file: Path, timeout: float = 20) -> None:
    pid = _pid(pid_file)
    if pid is None or not pid_running(pid):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_running(pid):
            time.sleep(0.1)
        if not pid_running(pid):
            return
    raise ClusterError(f"{name} (pid {pid}) did not stop")


def status(state_dir: Path = DEFAULT_DIR) -> dict[str, int | None]:
    """Each daemon's pid if it runs, else None."""
    return {
        name: (pid if (pid := _pid(path)) is not None and pid_running(pid) else None)
        for name, path in _pid_files(Path(state_dir)).items()
    }


def _node_idle(cluster: Cluster) -> bool:
    done = cluster.run("sinfo", "-h", "-N", "-o", "%t", check=False)
    return (
        done.returncode == 0
        and done.stdout.split() == ["idle"] * len(done.stdout.split())
        and bool(done.stdout.split())
    )


def _accounting_works(cluster: Cluster) -> bool:
    return cluster.run("sacct", "-n", "-X", "-a", check=False).returncode == 0


def up(state_dir: Path = DEFAULT_DIR) -> Cluster:
    """Start a fresh cluster in state_dir (stopping one already running there); return it once
    the node is idle and sacct answers."""
    state_dir = Path(state_dir).resolve()
    cluster = Cluster(state_dir)
    if any(status(state_dir).values()):
        down(state_dir)
    for sub in ("etc", "state", "run", "log"):  # not mysql/: its data directory is reused, the database dropped
        shutil.rmtree(state_dir / sub, ignore_errors=True)
    for sub in ("etc", "state/ctld", "state/slurmd", "run", "log"):
        (state_dir / sub).mkdir(parents=True)
    sockets = _socket_dir(state_dir)
    shutil.rmtree(sockets, ignore_errors=True)
    sockets.mkdir(mode=0o755)
    os.chmod(sockets, 0o755)
    ports = dict(zip(("slurmctld", "slurmd", "slurmdbd", "mariadb"), _free_ports(4)))
    password = secrets.token_hex(12)
    etc = state_dir / "etc"
    cluster.conf.write_text(_slurm_conf(state_dir, sockets, ports))
    dbd_conf = etc / "slurmdbd.conf"  # slurmdbd reads slurmdbd.conf beside $SLURM_CONF; it must be 0600
    dbd_conf.touch(mode=0o600)
    dbd_conf.write_text(_slurmdbd_conf(state_dir, sockets, ports, password))
    key = etc / "munge.key"
    subprocess.run(["mungekey", "--create", f"--keyfile={key}", "--bits=1024"], check=True, capture_output=True)
    env = {**os.environ, **cluster.environ}
    try:
        _start(
            "munged",
            [
                "munged",
                f"--socket={sockets}/munge.socket",
                f"--key-file={key}",
                f"--pid-file={_pid_files(state_dir)['munged']}",
                f"--log-file={state_dir}/log/munged.log",
                f"--seed-file={state_dir}/run/munged.seed",
            ],
            state_dir,
            env,
        )
        _start_mariadb(state_dir, sockets, ports["mariadb"], password)
        _start("slurmdbd", ["slurmdbd"], state_dir, env)
        # slurmdbd writes its pid file before it listens; slurmctld started too early exits ("no TRES").
        _wait("slurmdbd", lambda: _listening(ports["slurmdbd"]), 30, state_dir / "log" / "slurmdbd.log")
        _start("slurmctld", ["slurmctld", "-f", str(cluster.conf)], state_dir, env)
        _start("slurmd", ["slurmd", "-f", str(cluster.conf), "-N", "localhost"], state_dir, env)
        _wait(
            "node localhost idle in sinfo",
            lambda: _node_idle(cluster),
            60,
            state_dir / "log" / "slurmctld.log",
            state_dir,
        )
        _wait("sacct", lambda: _accounting_works(cluster), 60, state_dir / "log" / "slurmdbd.log", state_dir)
    except BaseException:
        down(state_dir)
        raise
    return cluster


def down(state_dir: Path = DEFAULT_DIR) -> None:
    """Cancel this cluster's jobs, then stop its daemons by their pid files."""
    state_dir = Path(state_dir).resolve()
    cluster = Cluster(state_dir)
    running = status(state_dir)
    if running["slurmctld"] and running["slurmd"]:
        jobs = cluster.run("squeue", "-h", "-o", "%A", check=False).stdout.split()
        if jobs:
            cluster.run("scancel", *jobs, check=False)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and cluster.run("squeue", "-h", "-o", "%A", check=False).stdout.split():
                time.sleep(0.5)
    for name, pid_file in _pid_files(state_dir).items():
        _stop_pid(name, pid_file)
    shutil.rmtree(_socket_dir(state_dir), ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m slurm.localcluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"state folder (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            cluster = up(args.dir)
            print(f"export SLURM_CONF={cluster.conf}")
        elif args.action == "down":
            down(args.dir)
        else:
            for name, pid in status(args.dir).items():
                print(f"{name}: {'running, pid ' + str(pid) if pid else 'stopped'}")
            if all(status(args.dir).values()):
                print(Cluster(Path(args.dir).resolve()).run("sinfo", check=False).stdout.rstrip())
    except (ClusterError, OSError, subprocess.SubprocessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
