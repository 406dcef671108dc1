"""attnperf.measure.nvml against a fake pynvml: one init per process (failures
remembered), the GPU handle by UUID, clock readings, the throttle-reasons
fallback of older nvidia-ml-py, and "absent" without a crash."""

import subprocess
import sys
import types

import pytest

from attnperf.measure import nvml
from attnperf.model.records import ClockReading, reason_names


class NVMLError(Exception):
    pass


def fake_pynvml(*, init_error=False, event_api=True, uuids=("GPU-abc",), mhz=1755,
                reasons=0x4 | 0x1, fail_reads=False, driver=b"580.65.06"):
    nv = types.ModuleType("pynvml")
    nv.NVMLError = NVMLError
    nv.NVML_CLOCK_SM, nv.NVML_TEMPERATURE_GPU = 1, 0
    nv.calls = []

    def init():
        nv.calls.append("init")
        if init_error:
            raise NVMLError("Driver Not Loaded")

    def by_index(i):
        nv.calls.append(("index", i))
        if i >= len(uuids):
            raise NVMLError("Invalid Argument")
        return ("handle", i)

    def by_uuid(u):
        nv.calls.append(("uuid", u))
        if u not in uuids:
            raise NVMLError("Not Found")
        return ("handle", uuids.index(u))

    def read(value):
        def fn(*args):
            nv.calls.append(("read",) + args)
            if fail_reads:
                raise NVMLError("GPU is lost")
            return value
        return fn

    nv.nvmlInit = init
    nv.nvmlDeviceGetHandleByIndex = by_index
    nv.nvmlDeviceGetHandleByUUID = by_uuid
    nv.nvmlDeviceGetClockInfo = read(mhz)
    nv.nvmlDeviceGetMaxClockInfo = read(1980)
    nv.nvmlDeviceGetTemperature = read(61)
    if event_api:
        nv.nvmlDeviceGetCurrentClocksEventReasons = read(reasons)
    else:  # nvidia-ml-py before 12.535 knows only the old name
        nv.nvmlDeviceGetCurrentClocksThrottleReasons = read(reasons)
    nv.nvmlSystemGetDriverVersion = read(driver)
    return nv


@pytest.fixture
def use(monkeypatch):
    """Install a fake pynvml (or None: not installed) with a fresh NVML state."""
    def install(module):
        monkeypatch.setitem(sys.modules, "pynvml", module)
        nvml._reset()
        return module
    yield install
    nvml._reset()


def test_reader_by_uuid_reads_clock_and_event_reasons(use):
    nv = use(fake_pynvml(uuids=("GPU-zzz", "GPU-abc")))
    read = nvml.clock_reader("abc", index=0)  # torch's UUID has no "GPU-" prefix
    assert read() == ClockReading(1755, 0x5)
    assert read().slowdown_bits == 0x4 and read().events == ["gpu_idle", "sw_power_cap"]
    assert ("uuid", "GPU-abc") in nv.calls and ("index", 0) not in nv.calls
    assert ("read", ("handle", 1), 1) in nv.calls  # the SM clock of the second GPU


def test_reader_falls_back_to_the_index_and_the_throttle_api(use):
    nv = use(fake_pynvml(event_api=False, reasons=0x40))
    read = nvml.clock_reader("GPU-unknown", index=0)
    assert read() == ClockReading(1755, 0x40) and read().events == ["hw_thermal"]
    assert ("index", 0) in nv.calls
    assert nvml.clock_reader(None, index=0)() == ClockReading(1755, 0x40)


def test_nvml_is_initialised_once_and_a_failure_is_remembered(use):
    nv = use(fake_pynvml())
    for _ in range(3):
        nvml.clock_reader()
    nvml.gpu_clock_state()
    assert nv.calls.count("init") == 1
    nv = use(fake_pynvml(init_error=True))
    assert nvml.clock_reader() is None and nvml.clock_reader() is None
    assert nvml.gpu_clock_state() is None
    assert nv.calls == ["init"]


def test_gpu_identity_by_index_or_uuid(use):
    """Which GPU a job ran on: the index NVML numbers it, its serial, UUID and name; a board
    without a serial, an unknown GPU and no NVML keep what is known (the index given)."""
    nv = use(fake_pynvml(uuids=("GPU-a", "GPU-b")))
    nv.nvmlDeviceGetIndex = lambda h: h[1]
    nv.nvmlDeviceGetSerial = lambda h: [b"1654922000001", b"1654922000002"][h[1]]
    nv.nvmlDeviceGetUUID = lambda h: ["GPU-a", "GPU-b"][h[1]]
    nv.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    assert nvml.gpu_identity("1") == {"index": 1, "serial": "1654922000002", "uuid": "GPU-b",
                                      "name": "NVIDIA H100 80GB HBM3"}
    assert nvml.gpu_identity("GPU-a")["index"] == 0
    assert nvml.gpu_identity("7") == {"index": 7, "serial": None, "uuid": None, "name": None}

    def no_serial(h):
        raise NVMLError("Not Supported")

    nv.nvmlDeviceGetSerial = no_serial
    assert nvml.gpu_identity("0")["serial"] is None and nvml.gpu_identity("0")["uuid"] == "GPU-a"
    use(None)
    assert nvml.gpu_identity("3") == {"index": 3, "serial": None, "uuid": None, "name": None}


def test_absent_package_means_unavailable(use, monkeypatch):
    use(None)  # a None entry in sys.modules makes "import pynvml" raise ImportError
    assert nvml.clock_reader() is None and nvml.gpu_clock_state() is None
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(OSError("no smi")))
    assert nvml.driver_version() is None


def test_a_gpu_nvml_cannot_open_gives_no_reader(use):
    use(fake_pynvml(uuids=()))
    assert nvml.clock_reader(None, index=3) is None


def test_a_failed_reading_is_none_not_a_crash(use, monkeypatch):
    use(fake_pynvml(fail_reads=True))
    read = nvml.clock_reader()
    assert read is not None and read() is None
    assert nvml.gpu_clock_state() is None
    # The driver version then comes from nvidia-smi (absent here).
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(OSError("no smi")))
    assert nvml.driver_version() is None


def test_gpu_clock_state_lists_slowdown_reasons_only(use):
    use(fake_pynvml(reasons=0x1 | 0x4 | 0x80 | 0x10))
    assert nvml.gpu_clock_state() == {"sm_clock_mhz": 1755, "sm_clock_max_mhz": 1980,
                                      "temperature_c": 61,
                                      "throttle_reasons": ["sw_power_cap", "hw_power_brake"]}


def test_driver_version_from_nvml_or_nvidia_smi(use, monkeypatch):
    use(fake_pynvml(driver=b"580.65.06"))
    assert nvml.driver_version() == "580.65.06"
    use(fake_pynvml(driver="575.1"))
    assert nvml.driver_version() == "575.1"
    use(None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout="570.10\n", stderr=""))
    assert nvml.driver_version() == "570.10"
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 9, stdout="", stderr="NVIDIA-SMI has failed"))
    assert nvml.driver_version() is None


def test_real_nvidia_ml_py_without_a_driver_is_unavailable(monkeypatch):
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is a test dependency")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pytest.skip("this machine has an NVIDIA driver")
    monkeypatch.delitem(sys.modules, "pynvml")
    nvml._reset()
    try:
        assert nvml.clock_reader() is None and nvml.gpu_clock_state() is None
    finally:
        nvml._reset()


def test_reason_names_decode_every_bit_and_keep_unknown_ones():
    assert reason_names(0) == []
    assert reason_names(0x1FF) == ["gpu_idle", "applications_clocks_setting", "sw_power_cap",
                                   "hw_slowdown", "sync_boost", "sw_thermal", "hw_thermal",
                                   "hw_power_brake", "display_clock_setting"]
    assert reason_names(0x4 | 0x400) == ["sw_power_cap", "0x400"]
    assert ClockReading(1980, 0x1 | 0x10 | 0x2).slowdown_bits == 0  # idle/boost are not slowdowns
    assert ClockReading(1500, 0x8 | 0x20).slowdown_bits == 0x28
