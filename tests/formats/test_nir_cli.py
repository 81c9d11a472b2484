"""Bring your own network, on the command line: `snn-export model.pt --target nir`, `snn-export MODEL.nir --target
loihi|onnx|nir`, then snn-sim and snn-deploy on the NetX file; Lava agrees with snn-sim at every step."""
import json

import nir
import numpy as np
import pytest
import torch

from small_models import small_ms_resnet
from snnchip.deploy.cli import main as deploy_main
from snnchip.export.cli import main as export_main
from snnchip.export.lower import lower
from snnchip.formats.nir import read_nir
from snnchip.sim import simulate
from snnchip.sim.cli import main as sim_main
from snnchip.train.checkpoint import save_checkpoint

from . import frameworks as fw


def run(capsys, main, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("nir_cli") / "model.pt"
    save_checkpoint(str(path), small_ms_resnet(0))
    return path


def test_checkpoint_to_nir_and_back_to_loihi_on_lava(checkpoint, tmp_path, capsys):
    nir_path, net = tmp_path / "model.nir", tmp_path / "model.net"
    code, out, err = run(capsys, export_main, checkpoint, "--target", "nir", "-o", nir_path)
    assert code == 0, err
    g = nir.read(nir_path)
    assert g.metadata["T"] == 8 and sum(isinstance(n, nir.Conv2d) for n in g.nodes.values()) == 1 + 2 * 3 + 2
    # the float graph read back gives the lowered model's spikes
    model = small_ms_resnet(0).double().eval()
    x = (torch.rand(2, 2, 16, 16, 8, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    ours, back = lower(model), read_nir(nir_path)
    names = [p.name for p in ours.populations if p.neuron.threshold is not None and not p.is_input]
    ra, rb = simulate(ours, x, record=tuple(names)), simulate(back, x, record=tuple(names))
    assert all(torch.equal(ra.spikes[n], rb.spikes[n]) for n in names)
    code, out, err = run(capsys, export_main, nir_path, "--target", "loihi", "--calibrate", "digits-dvs",
                         "--samples", 24, "--eval-samples", 0, "-o", net, "--json")
    assert code == 0, err
    assert json.loads(out)["input"] == "binary"       # digits-dvs frames are 0/1
    code, out, err = run(capsys, sim_main, net, "--dataset", "digits-dvs", "--samples", 8, "--json")
    assert code == 0, err
    code, out, err = run(capsys, deploy_main, net, "--dataset", "digits-dvs", "--samples", 2, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["identical"] and report["prediction_agreement"] == 1.0, report["agreement"]
    assert report["agreement"]["readout"]["max_abs_diff"] == 0


def test_spikingjelly_file_to_loihi_on_lava(tmp_path, capsys):
    """A SpikingJelly residual network for digits-dvs' 2x16x16 frames, exported by SpikingJelly, deployed."""
    from spikingjelly.activation_based import layer, neuron

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(5)
            self.c0, self.n0 = layer.Conv2d(2, 6, 3, stride=2, padding=1), neuron.LIFNode(tau=2.0)
            self.c1, self.n1 = layer.Conv2d(6, 6, 3, padding=1), neuron.LIFNode(tau=2.0, decay_input=False)
            self.c2, self.n2 = layer.Conv2d(6, 6, 3, padding=1), neuron.IFNode()
            self.pool, self.flat = layer.AvgPool2d(2), layer.Flatten()
            self.fc, self.n3 = layer.Linear(96, 10), neuron.LIFNode(tau=2.0)
            with torch.no_grad():
                for conv in (self.c0, self.c1, self.c2, self.fc):
                    conv.weight.mul_(4.0)

        def forward(self, x):
            a = self.n0(self.c0(x))
            return self.n3(self.fc(self.flat(self.pool(self.n2(self.c2(self.n1(self.c1(a))) + a)))))

    src, net = tmp_path / "sj.nir", tmp_path / "sj.net"
    fw.spikingjelly_export(Net(), (2, 16, 16), src)
    code, out, err = run(capsys, export_main, src, "--target", "loihi", "--calibrate", "digits-dvs", "--steps", 8,
                         "--samples", 24, "--eval-samples", 0, "-o", net)
    assert code == 0, err
    code, out, err = run(capsys, deploy_main, net, "--dataset", "digits-dvs", "--samples", 2, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["identical"], report["agreement"]
    code, out, err = run(capsys, export_main, src, "--target", "onnx", "-o", tmp_path / "sj.onnx")
    assert code == 0, err


@pytest.mark.parametrize("argv, message", [
    (["{nir}", "--target", "loihi", "--calibrate", "digits-dvs"], "--steps"),
    (["{nir}", "--target", "loihi", "--dt", "1"], "shorter than dt"),
    (["{nir}", "--target", "nir", "--timing", "pipelined"], "ideal timing"),
    (["{nir}", "--target", "nir", "-o", "{nir}"], "overwrite"),
    (["{bad}", "--target", "loihi"], "not an HDF5"),
])
def test_bad_nir_input_is_one_line(tmp_path, capsys, argv, message):
    src = tmp_path / "sj.nir"
    fw.spikingjelly_export(fw.SpikingJellyResBlock(), (2, 6, 6), src)
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"junk")
    argv = [a.replace("{nir}", str(src)).replace("{bad}", str(bad)) for a in argv]
    code, out, err = run(capsys, export_main, *argv)
    assert code == 2 and err.count("\n") == 1 and message in err, err
