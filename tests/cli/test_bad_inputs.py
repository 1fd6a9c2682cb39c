"""The catalogue of bad inputs (docs/robustness.md): each gives one clear line, exit status 2,
no traceback, and leaves no half-written file behind."""

import json

import numpy as np
import pytest
import torch

from sepgraph import create_model
from sepgraph.cli import main
from sepgraph.graph import gemm
from sepgraph.models.checkpoints import save_weights

SMALL = ["--data", "digits:all", "--normalize", "none", "--vertices", "100", "--edges", "300",
         "--hist-samples", "200", "--lu-batch-size", "50", "--lu-batches", "2", "--no-report"]


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def checkpoint(tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    model = create_model("resnet20")
    if kind == "nan":
        with torch.no_grad():
            model.conv1.weight.fill_(float("nan"))
    if kind == "zero":
        with torch.no_grad():
            model.bn1.weight.zero_()
            model.bn1.bias.fill_(-1.0)
    if kind == "other":
        model = create_model("resnet32")
    save_weights(model, path)
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    if kind == "corrupt":
        path.write_bytes(b"\x00" * 1000)
    if kind == "pickle":
        torch.save({"state_dict": model.state_dict(), "hook": Payload()}, path)
    return path


def npz(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    images = np.zeros((60, 32, 32, 3), np.uint8) + np.arange(60, dtype=np.uint8)[:, None, None, None]
    labels = np.arange(60) % 3
    if kind == "no_labels":
        np.savez(path, images=images)
    elif kind == "grey":
        np.savez(path, images=images[..., :1], labels=labels)
    elif kind == "rare_class":
        labels = np.array([0] * 30 + [1] * 28 + [2] * 2)
        np.savez(path, images=images, labels=labels)
    elif kind == "label_range":
        np.savez(path, images=images, labels=labels + 2, classes=np.array(["a", "b", "c"]))
    return f"npz:{path}"


CASES = {
    "unknown model": (lambda t: ["analyze", "--model", "resnet57"], "unknown model 'resnet57'"),
    "unknown layer": (lambda t: ["analyze", "--model", "resnet20", "--points", "layer9.conv"],
                      "unknown layer 'layer9.conv'"),
    "empty layer list": (lambda t: ["analyze", "--model", "resnet20", "--points", ","],
                         "list of layer points is empty"),
    "edges above pairs": (lambda t: ["analyze", "--model", "resnet20", "--vertices", "20", "--edges", "1000"],
                          "--edges 1000 must be between 1 and the 190 pairs"),
    "vertices below classes": (lambda t: ["analyze", "--model", "resnet20", "--vertices", "5", "--edges", "3",
                                          "--knn-k", "2"],
                               "5 vertices are fewer than the 10 classes"),
    "vertices above dataset": (lambda t: ["analyze", "--model", "resnet20", "--vertices", "5000"],
                               "cannot choose 5000 vertices from a dataset of 1797"),
    "class too small": (lambda t: ["analyze", "--model", "resnet20", "--data", npz(t, "rare_class"),
                                   "--vertices", "30", "--edges", "50"], "class 2 has 2 samples"),
    "labels missing": (lambda t: ["analyze", "--model", "resnet20", "--data", npz(t, "no_labels")],
                       "has no 'labels' array"),
    "labels out of range": (lambda t: ["analyze", "--model", "resnet20", "--data", npz(t, "label_range")],
                            "label 4 is out of range for 3 class names"),
    "labels beyond the head": (lambda t: ["eval", "--model", "resnet20", "--num-classes", "5", "--data", "digits"],
                               "out of range for a model with 5 outputs"),
    "wrong channels": (lambda t: ["analyze", "--model", "resnet20", "--data", npz(t, "grey"), "--vertices", "30",
                                  "--edges", "50", "--hist-samples", "60", "--lu-batch-size", "15"],
                       "cannot take inputs of shape (1, 32, 32)"),
    "NaN features": (lambda t: ["analyze", "--model", "resnet20", "--weights", str(checkpoint(t, "nan"))],
                     "layer point 'stem': features contain NaN or Inf"),
    "all-zero features": (lambda t: ["analyze", "--model", "resnet20", "--weights", str(checkpoint(t, "zero"))],
                          "layer point 'layer3.2.unit2': every feature vector is zero"),  # measured from the last
    "corrupt checkpoint": (lambda t: ["eval", "--model", "resnet20", "--weights", str(checkpoint(t, "corrupt"))],
                           "is corrupt or truncated"),
    "truncated checkpoint": (lambda t: ["eval", "--model", "resnet20", "--weights", str(checkpoint(t, "truncated"))],
                             "is corrupt or truncated"),
    "checkpoint of another architecture": (
        lambda t: ["eval", "--model", "resnet20", "--weights", str(checkpoint(t, "other"))],
        "does not fit the model (CifarResNet): unexpected keys"),
    "pickle that needs code": (lambda t: ["eval", "--model", "resnet20", "--weights", str(checkpoint(t, "pickle"))],
                               "refused: it needs code to unpickle"),
    "memory budget below one point": (lambda t: ["analyze", "--model", "resnet20", "--max-memory", "1M"],
                                      "more than --max-memory 0.00 GiB; raise it"),
    "CUDA without CUDA": (lambda t: ["analyze", "--model", "resnet20", "--device", "cuda"],
                          "CUDA is not available here"),
    "unknown dataset": (lambda t: ["analyze", "--model", "resnet20", "--data", "mnist"], "unknown dataset 'mnist'"),
    "features neither npz nor folder": (lambda t: ["measure", str(t / "x.txt"), "--labels", str(labels(t)), "--out",
                                                   str(t / "out")], "are neither an .npz file nor a folder"),
    "features of another sample count": (lambda t: ["measure", str(features(t, 59)), "--labels", str(labels(t)),
                                                    "--out", str(t / "out")],
                                         "point 'b' has features of 59 samples, but --labels has 60"),
    "labels that cannot be read": (lambda t: ["measure", str(features(t, 60)), "--labels", str(t / "none.npy"),
                                              "--out", str(t / "out")], "--labels "),
    "compare on other data": (lambda t: ["compare", "resnet20", "resnet20", "--data", "digits:test", "--data-b",
                                         "digits:train", "--out", str(t / "out")],
                              "the two models' data differ ('digits:test', digest"),
}


def labels(tmp_path):
    path = tmp_path / "labels.npy"
    np.save(path, np.arange(60) % 3)
    return path


def features(tmp_path, count):
    path = tmp_path / "features.npz"
    rng = np.random.default_rng(0)
    np.savez(path, a=rng.standard_normal((60, 8)), b=rng.standard_normal((count, 4, 2, 2)))
    return path


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, tmp_path, capsys):
    if case == "CUDA without CUDA" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    build, message = CASES[case]
    argv = build(tmp_path)
    out = tmp_path / "out"
    if argv[0] == "analyze":  # the small defaults, unless the case sets that flag itself
        argv = argv + [part for flag, value in _pairs(SMALL) if flag not in argv for part in (flag, value) if part]
        argv += ["--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.replace("\r", "\n").splitlines() if "sepgraph: error: " in line]
    assert len(errors) == 1 and message in errors[0], captured.err
    assert "Traceback" not in captured.err and "this must never run" not in captured.out
    if argv[0] in ("measure", "compare"):  # refused before anything is written
        assert not out.exists()
    if out.exists():  # a layer failing mid-run leaves only complete files, no table, and says it failed
        assert not list(out.rglob("*.tmp")) and not (out / "layers.csv").exists()
        manifest = json.loads((out / "manifest.json").read_text())
        first_clause = errors[0].split("sepgraph: error: ", 1)[1].split(",")[0]  # before any argument is named
        assert manifest["status"] == "failed" and first_clause in manifest["error"]  # in the library's own words


def _pairs(arguments):
    """(flag, value) pairs of an argument list; a flag without a value gets ''."""
    pairs, index = [], 0
    while index < len(arguments):
        has_value = index + 1 < len(arguments) and not arguments[index + 1].startswith("--")
        pairs.append((arguments[index], arguments[index + 1] if has_value else ""))
        index += 2 if has_value else 1
    return pairs


def test_outputs_that_cannot_be_used(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["analyze", "--model", "resnet20", *SMALL, "--out", str(tmp_path / "file" / "out")]) == 2
    assert "cannot write to output folder" in capsys.readouterr().err
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert main(["analyze", "--model", "resnet20", *SMALL, "--out", str(full)]) == 2
    assert "is not empty; pass --resume" in capsys.readouterr().err
    assert (full / "notes.txt").read_text() == "mine" and len(list(full.iterdir())) == 1


def test_resume_refuses_other_versions_and_changed_parameters(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["analyze", "--model", "resnet20", *SMALL, "--convention", "blocks", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert main(["analyze", "--model", "resnet20", *SMALL, "--convention", "blocks", "--seed", "1", "--out", str(out),
                 "--resume"]) == 2
    assert "parameters changed (seed: 0 -> 1)" in capsys.readouterr().err
    if manifest["run"]["gemm"] == "torch" and gemm.numpy_openblas() is not None:  # another engine: other floats
        assert main(["analyze", "--model", "resnet20", *SMALL, "--convention", "blocks", "--gemm", "openblas",
                     "--out", str(out), "--resume"]) == 2
        assert "parameters changed (gemm: 'torch" in capsys.readouterr().err
    (out / "manifest.json").write_text(json.dumps({**manifest, "format_version": 0}))
    assert main(["analyze", "--model", "resnet20", *SMALL, "--convention", "blocks", "--out", str(out),
                 "--resume"]) == 2
    assert "written by results format 0" in capsys.readouterr().err
