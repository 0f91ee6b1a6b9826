using BenchmarkDotNet.Attributes;
using KernelModel.Iommu;

namespace KernelModel.Benchmarks;

/// <summary>
/// Map then unmap 1 GiB of physically contiguous, 1 GiB-aligned memory in a domain whose
/// page-size bitmap allows only 4K pages (262,144 IOPTE writes each way), 4K|2M (512) or
/// 4K|2M|1G (1). The domains are warmed in setup, so this is the steady state: table nodes are
/// cached in the tree and neither map nor unmap allocates.
/// </summary>
[MemoryDiagnoser]
public class IommuDomainMapBenchmarks
{
    private const ulong K4 = 4UL << 10;
    private const ulong M2 = 2UL << 20;
    private const ulong G1 = 1UL << 30;
    private static readonly Iova s_iova = new(G1);
    private static readonly PhysAddr s_phys = new(4 * G1);

    private IommuDomain _fourKOnly = null!;
    private IommuDomain _fourKTwoM = null!;
    private IommuDomain _fourKTwoMOneG = null!;

    [GlobalSetup]
    public void Setup()
    {
        _fourKOnly = new IommuDomain(IoPageTableFormat.X86_64, K4);
        _fourKTwoM = new IommuDomain(IoPageTableFormat.X86_64, K4 | M2);
        _fourKTwoMOneG = new IommuDomain(IoPageTableFormat.X86_64, K4 | M2 | G1);
        MapUnmap(_fourKOnly);
        MapUnmap(_fourKTwoM);
        MapUnmap(_fourKTwoMOneG);
    }

    [Benchmark(Baseline = true)]
    public ulong MapUnmap1GiB_4K() => MapUnmap(_fourKOnly);

    [Benchmark]
    public ulong MapUnmap1GiB_4K2M() => MapUnmap(_fourKTwoM);

    [Benchmark]
    public ulong MapUnmap1GiB_4K2M1G() => MapUnmap(_fourKTwoMOneG);

    private static ulong MapUnmap(IommuDomain domain)
    {
        var result = domain.Map(s_iova, s_phys, G1, IommuProt.Read | IommuProt.Write);
        if (!result.IsOk)
        {
            throw new InvalidOperationException($"map failed: {result.Error}");
        }

        return domain.Unmap(s_iova, G1);
    }
}
