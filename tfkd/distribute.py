"""Which ``tf.distribute`` strategy a run trains under, and who is the chief.

``auto`` follows TensorFlow's own conventions: a ``TF_CONFIG`` in the environment means
a multi-worker cluster, an attached TPU means TPU, more than one GPU means mirrored
replicas on this machine, and otherwise training runs under the default strategy.
``batch_size`` settings are always the *global* batch: each of the ``replicas()``
replicas computes ``batch_size / replicas`` examples per step.

Note: ``MultiWorkerMirroredStrategy`` must be created before TensorFlow runs any op, so
resolve the strategy first thing in a process. How replicas then train as one device
(global batch statistics, dropout masks, loss shares) is :mod:`tfkd.train.replicas`.
"""

import glob
import json
import os
import socket

from tfkd.lazy_tf import tf

__all__ = ["STRATEGIES", "DistributeError", "choose", "resolve", "name_of", "replicas",
           "is_chief", "worker", "tpu_attached", "shard_policy", "local_cluster"]

#: The values of ``distribute.strategy``.
STRATEGIES = ("auto", "none", "mirrored", "multi_worker", "tpu")


class DistributeError(ValueError):
    """A strategy that cannot be set up here; the message names the setting."""


def _tf_config(env):
    raw = env.get("TF_CONFIG")
    if not raw:
        return None
    try:
        cfg = json.loads(raw)
    except ValueError:
        raise DistributeError("TF_CONFIG: not valid JSON") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict):
        raise DistributeError("TF_CONFIG: needs a 'cluster' mapping")
    return cfg


def tpu_attached(env=None):
    """Whether this machine looks like it has a TPU: a TPU VM's ``/dev/accel*`` devices, or
    the ``TPU_NAME`` / ``COLAB_TPU_ADDR`` variables of GCE and Colab."""
    env = os.environ if env is None else env
    return bool(env.get("TPU_NAME") or env.get("COLAB_TPU_ADDR") or glob.glob("/dev/accel[0-9]*"))


def choose(name="auto", *, env=None, gpus=None):
    """The concrete strategy name for a ``distribute.strategy`` value (no TensorFlow state).

    Args:
      name: one of :data:`STRATEGIES`.
      env: the environment (default ``os.environ``).
      gpus: the number of GPUs (default: TensorFlow's physical GPU count).

    Returns:
      ``none``, ``mirrored``, ``multi_worker`` or ``tpu``.

    Raises:
      DistributeError: an unknown name, or a malformed ``TF_CONFIG``.
    """
    if name not in STRATEGIES:
        raise DistributeError(f"distribute.strategy: must be one of {', '.join(STRATEGIES)}, "
                              f"got {name!r}")
    env = os.environ if env is None else env
    if name != "auto":
        return name
    if _tf_config(env) is not None:
        return "multi_worker"
    if tpu_attached(env):
        return "tpu"
    gpus = len(tf.config.list_physical_devices("GPU")) if gpus is None else gpus
    return "mirrored" if gpus > 1 else "none"


def resolve(name="auto", *, tpu=None):
    """Creates the strategy for a ``distribute.strategy`` value.

    Args:
      name: one of :data:`STRATEGIES` (see :func:`choose` for ``auto``).
      tpu: the TPU name or address for ``tpu`` (default: found from the environment).

    Returns:
      A ``tf.distribute.Strategy`` (the default strategy for ``none``).

    Raises:
      DistributeError: an unknown name, or no TPU where ``tpu`` was asked for.
    """
    chosen = choose(name)
    if chosen == "none":
        return tf.distribute.get_strategy()
    if chosen == "mirrored":
        # GPUs when there are any; else every logical CPU (more than one only when the
        # CPU was split into logical devices, as the tests do).
        gpus = tf.config.list_logical_devices("GPU")
        devices = gpus or tf.config.list_logical_devices("CPU")
        # Logical CPUs gain nothing from collective all-reduce, and every MirroredStrategy
        # on the same devices in one process (a notebook, a test session) restarts the
        # collective instance keys: the second one's all-reduce then aborts with "Shape
        # mismatch in the collective instance". Reducing on one device avoids collectives.
        ops = None if gpus else tf.distribute.ReductionToOneDevice()
        return tf.distribute.MirroredStrategy([d.name for d in devices], cross_device_ops=ops)
    if chosen == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributeError(f"distribute.strategy: tpu: no TPU found ({first})") from None
    return tf.distribute.TPUStrategy(resolver)


def name_of(strategy):
    """The :data:`STRATEGIES` name of a strategy object (``none`` for the default one)."""
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "none"


def replicas(strategy=None):
    """Replicas that train in sync (1 under the default strategy)."""
    strategy = strategy or tf.distribute.get_strategy()
    return int(strategy.num_replicas_in_sync)


def worker(env=None):
    """``(workers, index)`` of this process in its ``TF_CONFIG`` cluster (``(1, 0)`` without one).

    The chief, when the cluster names one, counts as worker 0 and the workers follow it.
    """
    cfg = _tf_config(os.environ if env is None else env)
    if cfg is None:
        return 1, 0
    cluster, task = cfg["cluster"], cfg.get("task", {})
    chiefs = len(cluster.get("chief", []))
    count = chiefs + len(cluster.get("worker", []))
    index = int(task.get("index", 0))
    if task.get("type") == "worker":
        index += chiefs
    return max(1, count), index


def local_cluster(workers):
    """``TF_CONFIG`` values for a cluster of ``workers`` processes on this machine.

    For trying multi-worker training on one machine (the tests and
    ``benchmarks/multiworker_parity.py`` start one ``tfkd run`` per value).

    Args:
      workers: the number of worker processes.

    Returns:
      One JSON string per worker, in task order (worker 0 is the chief), on free
      localhost ports.
    """
    socks = [socket.socket() for _ in range(workers)]
    try:
        for s in socks:
            s.bind(("localhost", 0))
        ports = [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(workers)]


def is_chief(env=None):
    """Whether this process writes the run folder: the ``chief`` task, or worker 0 when
    the cluster has no chief, or the only process when there is no ``TF_CONFIG``."""
    return worker(env)[1] == 0


def shard_policy(ds, policy="data"):
    """Sets how a multi-worker strategy shards ``ds`` between workers.

    Args:
      ds: a ``tf.data.Dataset``.
      policy: ``data`` (each worker keeps every n-th element), ``file`` (whole input
        files per worker; needs at least as many files as workers), ``auto`` or ``off``
        (the dataset is already sharded, e.g. by ``FeatureStore.batches(shard=...)``).

    Returns:
      The dataset with the option set.

    Raises:
      DistributeError: an unknown policy.
    """
    policies = {"data": tf.data.experimental.AutoShardPolicy.DATA,
                "file": tf.data.experimental.AutoShardPolicy.FILE,
                "auto": tf.data.experimental.AutoShardPolicy.AUTO,
                "off": tf.data.experimental.AutoShardPolicy.OFF}
    if policy not in policies:
        raise DistributeError(f"shard policy: must be one of {', '.join(policies)}, got {policy!r}")
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = policies[policy]
    return ds.with_options(options)
