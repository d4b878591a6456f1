"""training/checkpoint.py: NVIDIA's layout, files under the size limit, optimizer round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from training import checkpoint  # noqa: E402


def test_training_checkpoint_splits_and_joins(tmp_path: Path) -> None:
    big = {"state_dict": {"w": torch.randn(300, 100)}, "config": {"a": 1}, "iteration": 7}
    written = checkpoint.save(big, tmp_path / "m.pt", part_bytes=40_000)
    assert len(written) >= 3 and all(p.stat().st_size <= 40_000 for p in written)
    assert not (tmp_path / "m.pt").exists()
    back = checkpoint.load(tmp_path / "m.pt")
    assert torch.equal(back["state_dict"]["w"], big["state_dict"]["w"]) and back["iteration"] == 7
    small = {"state_dict": {"w": torch.zeros(3)}, "iteration": 8}
    assert checkpoint.save(small, tmp_path / "m.pt", part_bytes=40_000) == [tmp_path / "m.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # stale parts removed
    assert checkpoint.load(tmp_path / "m.pt")["iteration"] == 8


def test_training_checkpoint_optimizer_bf16_round_trip(tmp_path: Path) -> None:
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 8)).sum().backward()
    opt.step()
    saved = {"state_dict": model.state_dict(), "config": {}, "iteration": 1, "epoch": 0, "history": {}}
    checkpoint.save_training(tmp_path, "m", saved, opt.state_dict(), "bf16")
    loaded, state = checkpoint.load_training(tmp_path, "m")
    assert state is not None
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fresh.load_state_dict(state)
    for p in model.parameters():
        got, want = fresh.state[p]["exp_avg_sq"], opt.state[p]["exp_avg_sq"]
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=1e-2, atol=0)
    # A model saved later than its optimizer state: the state is dropped, not misapplied.
    checkpoint.save(saved | {"iteration": 2}, tmp_path / "m.pt")
    assert checkpoint.load_training(tmp_path, "m")[1] is None
    checkpoint.save_training(tmp_path, "m", saved, opt.state_dict(), "none")
    assert not (tmp_path / "m.optimizer.pt").exists()


def test_training_checkpoint_loads_with_rtvoice_reader(tmp_path: Path) -> None:
    """A training checkpoint is an NVIDIA-layout file that rtvoice's own loader accepts."""
    from rtvoice.export.checkpoint import load_tacotron2
    from rtvoice.export.tacotron2 import Tacotron2
    from training.train_tacotron2 import PRESETS

    model = Tacotron2(PRESETS["tiny"])
    config = {**PRESETS["tiny"].to_dict(), "training": {"lr": 1e-3, "data": "x"}}
    checkpoint.save({"state_dict": model.state_dict(), "config": config, "iteration": 3, "epoch": 1,
                     "history": {"train/mel": [(1, 2.0)]}}, tmp_path / "tacotron2.pt")
    loaded = load_tacotron2(tmp_path / "tacotron2.pt")
    assert loaded.params == PRESETS["tiny"]


def test_training_checkpoint_from_history_restores_an_untracked_checkpoint(tmp_path: Path) -> None:
    """Committed once, then untracked: a fresh clone's working tree lacks it, history gives it back."""
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for iteration in (5, 9):  # two sessions, each committing then untracking its checkpoint
        checkpoint.save({"state_dict": {"w": torch.full((2,), float(iteration))}, "iteration": iteration},
                        folder / "waveglow.pt")
        git("add", "-f", "ckpt/waveglow.pt")
        git("commit", "-qm", f"waveglow {iteration}")
        git("rm", "-q", "--cached", "ckpt/waveglow.pt")
        git("commit", "-qm", "untrack")
    (folder / "waveglow.pt").unlink()
    assert checkpoint.main(["history", "waveglow", str(folder)]) == 0
    back = checkpoint.load(folder / "waveglow.pt")
    assert back["iteration"] == 9 and torch.equal(back["state_dict"]["w"], torch.full((2,), 9.0))
    # A later local checkpoint is kept, not stepped back to the committed one.
    checkpoint.save({"state_dict": {"w": torch.zeros(2)}, "iteration": 12}, folder / "waveglow.pt")
    assert checkpoint.from_history(folder, "waveglow") == 12
    assert checkpoint.load(folder / "waveglow.pt")["iteration"] == 12
    # Nothing in history: an error, nothing written.
    with pytest.raises(checkpoint.NotInHistoryError, match="ckpt/tacotron2.pt"):
        checkpoint.from_history(folder, "tacotron2")
    assert not (folder / "tacotron2.pt").exists()


def _git(repo: Path, *args: str) -> None:
    import subprocess

    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_training_checkpoint_history_outside_git_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Not in a repository (or DIR missing there): exit 2 and one line, not git's traceback."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path counts
    folder = tmp_path / "ckpt"
    folder.mkdir()
    for target in (folder, tmp_path / "missing" / "ckpt"):
        assert checkpoint.main(["history", "waveglow", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not in a git repository" in err[0] and "Traceback" not in err[0], err


def test_training_checkpoint_history_of_a_name_history_lacks_exits_2(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped NAME or DIR exits 2 with one line naming what was searched, not 0 ("no NAME")."""
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    checkpoint.save({"state_dict": {"w": torch.zeros(2)}, "iteration": 4}, folder / "waveglow.pt")
    _git(tmp_path, "add", "-f", "ckpt/waveglow.pt")
    _git(tmp_path, "commit", "-qm", "waveglow 4")
    for name, target, searched in (("tacotron2", folder, "ckpt/tacotron2.pt"),  # NAME history lacks
                                   ("waveglow", tmp_path / "ckpts", "ckpts/waveglow.pt")):  # DIR mistyped
        assert checkpoint.main(["history", name, str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and searched in err[0], err
        assert not (target / f"{name}.pt").exists()
    # A local checkpoint history lacks is kept, and the line says so.
    checkpoint.save({"state_dict": {"w": torch.ones(2)}, "iteration": 2}, folder / "tacotron2.pt")
    assert checkpoint.main(["history", "tacotron2", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "keeps its own at iteration 2" in err[0], err
    assert checkpoint.load(folder / "tacotron2.pt")["iteration"] == 2


def test_training_checkpoint_history_restores_parts_into_a_folder_the_clone_lacks(tmp_path: Path) -> None:
    """A checkpoint over the part size is committed as NAME.pt.partNN; a fresh clone lacks even its folder."""
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.com")
    _git(tmp_path, "config", "user.name", "t")
    folder = tmp_path / "runs" / "ckpt"
    folder.mkdir(parents=True)
    weights = torch.randn(300, 100)
    written = checkpoint.save({"state_dict": {"w": weights}, "iteration": 7}, folder / "waveglow.pt",
                              part_bytes=40_000)
    assert len(written) >= 3
    _git(tmp_path, "add", "-f", "runs")
    _git(tmp_path, "commit", "-qm", "waveglow 7 in parts")
    _git(tmp_path, "rm", "-rq", "--cached", "runs")
    _git(tmp_path, "commit", "-qm", "untrack")
    for part in written:
        part.unlink()
    folder.rmdir()
    (tmp_path / "runs").rmdir()
    assert checkpoint.main(["history", "waveglow", str(folder)]) == 0
    back = checkpoint.load(folder / "waveglow.pt")
    assert back["iteration"] == 7 and torch.equal(back["state_dict"]["w"], weights)
    assert all(p.stat().st_size <= checkpoint.PART_BYTES for p in folder.iterdir())
    assert not list(folder.glob("*.tmp"))


def test_training_checkpoint_resumes_only_when_asked_and_present(tmp_path: Path) -> None:
    """Both trainers resume through load_resume: a fresh run unless --resume finds NAME.pt."""
    assert checkpoint.load_resume(tmp_path, "m", resume=True) == (None, None)  # nothing there yet
    model = torch.nn.Linear(2, 2)
    saved = {"state_dict": model.state_dict(), "config": {}, "iteration": 5, "epoch": 1, "history": {}}
    checkpoint.save_training(tmp_path, "m", saved, torch.optim.AdamW(model.parameters()).state_dict(), "fp32")
    assert checkpoint.load_resume(tmp_path, "m", resume=False) == (None, None)
    loaded, state = checkpoint.load_resume(tmp_path, "m", resume=True)
    assert loaded is not None and loaded["iteration"] == 5 and state is not None
