using BenchmarkDotNet.Attributes;

namespace KernelModel.Benchmarks;

/// <summary>
/// Machine.Boot of the embedded default machine (64 GiB of RAM) against the same machine with
/// 1 TiB of RAM. Physical memory is sparse, so the larger machine should cost about the same:
/// page metadata is allocated per section on first use, not per page at boot.
/// </summary>
[MemoryDiagnoser]
public class BootBenchmarks
{
    private const ulong G1 = 1UL << 30;

    private MachineSpec _default = null!;
    private MachineSpec _oneTebibyte = null!;

    [GlobalSetup]
    public void Setup()
    {
        _default = MachineSpec.Default;
        // 3 GiB below the PCI hole, the rest above the default devices' 64-bit BARs.
        _oneTebibyte = _default with
        {
            Name = "1tib",
            Ram =
            [
                new RangeSpec { Start = 0, Size = 3 * G1 },
                new RangeSpec { Start = 512 * G1, Size = 1021 * G1 },
            ],
        };
    }

    [Benchmark(Baseline = true)]
    public Machine Boot_Default64GiB() => Machine.Boot(_default);

    [Benchmark]
    public Machine Boot_1TiB() => Machine.Boot(_oneTebibyte);
}
