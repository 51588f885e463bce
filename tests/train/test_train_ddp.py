"""DistributedDataParallel under torchrun: 2 CPU processes on gloo."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import torch

from cinemri.train import load_checkpoint
from cinemri.train.example import SmoothingTask, TinyNet

WORKER = textwrap.dedent('''
    import hashlib, json, os, sys
    import torch
    from cinemri.train import TrainConfig, fit
    from cinemri.train.example import SmoothingTask

    class RecordingTask(SmoothingTask):
        """Remembers a fingerprint (pixel sum) of every training sample it sees."""
        def loss(self, batch, model):
            self.seen.extend(round(v, 4) for v in batch["x"].flatten(1).sum(1).tolist())
            return super().loss(batch, model)

    torch.set_num_threads(1)
    out = sys.argv[1]
    task = RecordingTask(train_size=16, val_size=5, noise=0.1)
    task.seen = []
    cfg = TrainConfig(epochs=3, batch_size=2, lr=1e-2, warmup_epochs=0.5, out_dir=out, device="cpu",
                      progress=False, tensorboard=False)
    result = fit(task, cfg)
    rank = int(os.environ["RANK"])
    digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in result.model.state_dict().values()))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump({"hash": digest.hexdigest(), "seen_epoch1": task.seen[:8], "history": result.history,
                   "world": int(os.environ["WORLD_SIZE"])}, handle)
''')


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_gloo_run(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", str(script), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    # both ranks end with identical weights, equal to the checkpoint rank 0 wrote
    assert ranks[0]["hash"] == ranks[1]["hash"]
    # each rank trained on its own shard: together the first epoch covers all 16 samples once
    task = SmoothingTask(train_size=16, val_size=5)
    every = sorted(round(v, 4) for v in task.train_dataset.x.flatten(1).sum(1).tolist())
    assert sorted(ranks[0]["seen_epoch1"] + ranks[1]["seen_epoch1"]) == every
    # only rank 0 keeps history/writes files; training lowered the loss
    history = ranks[0]["history"]
    assert ranks[1]["history"] == [] and len(history) == 3
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "config.yaml", "last.pt", "metrics.csv",
                                                     "rank0.json", "rank1.json"]
    # validation is all-reduced: rank 0's val_loss is the mean over all 5 samples (shards of 3 and 2)
    model = TinyNet(width=8)
    model.load_state_dict(load_checkpoint(out / "last.pt")["model"])
    with torch.no_grad():
        per_sample = ((model(task.val_dataset.x) - task.val_dataset.y) ** 2).mean(dim=(1, 2, 3))
    assert abs(history[-1]["val_loss"] - float(per_sample.mean())) < 1e-6 * float(per_sample.mean())
