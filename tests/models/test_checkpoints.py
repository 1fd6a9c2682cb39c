import pickle
from collections import OrderedDict

import pytest
import torch

from sepgraph import SepgraphError, create_model, load_weights, read_state_dict, save_weights
from sepgraph.files import file_sha256


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_round_trip_plain_state_dict(tmp_path):
    torch.manual_seed(0)
    source, target = create_model("resnet20"), create_model("resnet20")
    path = tmp_path / "w.pt"
    save_weights(source, path)
    assert [p.name for p in tmp_path.iterdir()] == ["w.pt"]
    assert load_weights(target, path) == file_sha256(path)
    assert _same(source, target)


def test_dataparallel_prefix_wrapper_and_missing_batch_counters(tmp_path):
    source, target = create_model("resnet20"), create_model("resnet20")
    state = OrderedDict(
        (f"module.{k}", v) for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")
    )
    path = tmp_path / "legacy.th"
    torch.save({"state_dict": state, "best_prec1": 91.7}, path, _use_new_zipfile_serialization=False)
    load_weights(target, path)
    assert _same(source, target)


def test_other_architecture_names_offending_keys(tmp_path):
    path = tmp_path / "w.pt"
    save_weights(create_model("resnet32"), path)
    with pytest.raises(SepgraphError, match=r"unexpected keys: layer1\.3\.bn1\.bias, .* \(72 in all\)"):
        load_weights(create_model("resnet20"), path)
    save_weights(create_model("resnet20", num_classes=100), path)
    with pytest.raises(SepgraphError, match=r"shape mismatches: linear\.bias \(checkpoint \(100,\), model \(10,\)\)"):
        load_weights(create_model("resnet20"), path)
    save_weights(create_model("vgg11_bn"), path)
    with pytest.raises(SepgraphError, match="missing keys: bn1.bias"):
        load_weights(create_model("resnet20"), path)


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.9])
def test_truncated_or_corrupt_file_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "w.pt"
    save_weights(create_model("resnet20"), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)] if keep else b"this is not a checkpoint")
    with pytest.raises(SepgraphError, match="corrupt or truncated"):
        read_state_dict(path)


class Payload:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (open, ("/tmp/sepgraph-pwned", "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_needing_code_is_refused_and_not_run(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(SepgraphError, match="weights_only=True"):
        read_state_dict(path)
    plain = tmp_path / "evil.pkl"
    plain.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(SepgraphError, match="refused|corrupt"):
        read_state_dict(plain)
    import os

    assert not os.path.exists("/tmp/sepgraph-pwned")


def test_missing_file_and_non_tensor_entries(tmp_path):
    with pytest.raises(SepgraphError, match="does not exist"):
        read_state_dict(tmp_path / "absent.pt")
    path = tmp_path / "odd.pt"
    torch.save({"conv.weight": torch.zeros(1), "epoch": 3}, path)
    with pytest.raises(SepgraphError, match="'epoch' is a int"):
        read_state_dict(path)


def test_shared_checkpoints_load_into_the_zoo(shared_data):
    for name, file in (("resnet20", "resnet20-12fca82f.th"), ("resnet56", "resnet56-4bfd9763.th")):
        digest = load_weights(create_model(name), shared_data / "weights" / file)
        assert digest.startswith(file.split("-")[1][:8])
