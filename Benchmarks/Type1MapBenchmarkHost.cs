using KernelModel.Uapi;

namespace KernelModel.Benchmarks;

/// <summary>
/// A booted default machine with the named PCI devices bound to vfio-pci, one process (with
/// CAP_IPC_LOCK, so locked_vm never limits a map) holding a type1v2 container with their groups,
/// and MAP_DMA/UNMAP_DMA through the real ioctl path with preallocated argument buffers, as the
/// type1 benchmarks share it.
/// </summary>
internal sealed class Type1MapBenchmarkHost
{
    public const string Nic = "0000:01:00.0";
    public const string Gpu = "0000:02:00.0";

    private readonly byte[] _map = new byte[UapiStruct.SizeOf<VfioIommuType1DmaMap>()];
    private readonly byte[] _unmap = new byte[UapiStruct.SizeOf<VfioIommuType1DmaUnmap>()];
    private readonly Dictionary<int, int> _groupFds = [];

    public Type1MapBenchmarkHost(params string[] devices)
    {
        Machine = Machine.Boot(MachineSpec.Default);
        Process = Machine.Spawn(new ProcessOptions { CapIpcLock = true, MemlockLimit = ulong.MaxValue });
        Container = (int)Check(Process.Open("/dev/vfio/vfio"), "open container");
        foreach (var name in devices)
        {
            Check(Machine.Sysfs.Bind(name, "vfio-pci").ToSyscall(), $"bind {name}");
            if (!Machine.TryGetDevice(name, out var device) || device.IommuGroup is not { } group)
            {
                throw new InvalidOperationException($"no device {name}");
            }

            if (_groupFds.ContainsKey(group.Id.Value))
            {
                continue;
            }

            var fd = (int)Check(Process.Open($"/dev/vfio/{group.Id}"), $"open group {group.Id}");
            var arg = BitConverter.GetBytes(Container);
            Check(Process.Ioctl(fd, VfioUapi.VFIO_GROUP_SET_CONTAINER, arg), "SET_CONTAINER");
            if (_groupFds.Count == 0)
            {
                Check(Process.Ioctl(Container, VfioUapi.VFIO_SET_IOMMU, (ulong)VfioUapi.VFIO_TYPE1v2_IOMMU), "SET_IOMMU");
            }

            _groupFds[group.Id.Value] = fd;
        }
    }

    public Machine Machine { get; }

    public UserProcess Process { get; }

    public int Container { get; }

    /// <summary>VFIO_GROUP_GET_DEVICE_FD for a device whose group is in the container.</summary>
    public int OpenDevice(string name)
    {
        Machine.TryGetDevice(name, out var device);
        var arg = System.Text.Encoding.UTF8.GetBytes(name + "\0");
        return (int)Check(Process.Ioctl(_groupFds[device.IommuGroup!.Id.Value], VfioUapi.VFIO_GROUP_GET_DEVICE_FD, arg), $"open {name}");
    }

    public ulong Mmap(ulong length, MapFlags flags, int fd = -1, ulong offset = 0, ulong addr = 0) =>
        (ulong)Check(Process.Mmap(addr, length, Prot.Read | Prot.Write, flags, fd, offset), "mmap");

    /// <summary>Anonymous memory faulted in as 4 KiB pages, THP (MADV_HUGEPAGE, every 2 MiB touched) or 1 GiB hugetlb pages.</summary>
    public ulong Populate(ulong length, Backing backing)
    {
        const MapFlags anon = MapFlags.Private | MapFlags.Anonymous;
        switch (backing)
        {
            case Backing.Pages4K:
                return Mmap(length, anon | MapFlags.Populate);
            case Backing.Thp:
                var va = Mmap(length, anon);
                Check(Process.Madvise(va, length, Madvise.HugePage), "madvise");
                for (var at = va; at < va + length; at += 2UL << 20)
                {
                    Check(Process.WriteMemory(at, [1]) == 1 ? 0 : -1, "touch");
                }

                return va;
            default:
                return Mmap(length, anon | MapFlags.HugeTlb | MapFlags.Huge1GB | MapFlags.Populate);
        }
    }

    /// <summary>VFIO_IOMMU_MAP_DMA, READ|WRITE; throws unless it succeeds.</summary>
    public long MapDma(ulong vaddr, ulong iova, ulong size)
    {
        UapiStruct.Write(_map, new VfioIommuType1DmaMap
        {
            Argsz = (uint)_map.Length,
            Flags = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE,
            Vaddr = vaddr,
            Iova = iova,
            Size = size,
        });
        return Check(Process.Ioctl(Container, VfioUapi.VFIO_IOMMU_MAP_DMA, _map), "MAP_DMA");
    }

    /// <summary>VFIO_IOMMU_UNMAP_DMA; returns the size unmapped.</summary>
    public ulong UnmapDma(ulong iova, ulong size)
    {
        UapiStruct.Write(_unmap, new VfioIommuType1DmaUnmap { Argsz = (uint)_unmap.Length, Iova = iova, Size = size });
        Check(Process.Ioctl(Container, VfioUapi.VFIO_IOMMU_UNMAP_DMA, _unmap), "UNMAP_DMA");
        UapiStruct.TryRead(_unmap, out VfioIommuType1DmaUnmap done);
        if (done.Size != size)
        {
            throw new InvalidOperationException($"UNMAP_DMA unmapped 0x{done.Size:x} of 0x{size:x}");
        }

        return done.Size;
    }

    /// <summary>
    /// Runs <paramref name="round"/> often enough, with pauses, for the tiered JIT to have compiled
    /// its path fully optimised: benchmarks that map or unmap in iteration setup/cleanup run one or
    /// a few invocations per iteration, too few for tier-up within BenchmarkDotNet's warmup, and
    /// would otherwise time tier-0 code — unlike any long-running VFIO user.
    /// </summary>
    public static void WarmJit(Action round)
    {
        // Tier-0, then instrumented tier-0 (dynamic PGO), then tier 1: each step wants its ~30 calls
        // and a quiet 100 ms before the background compile.
        for (var pass = 0; pass < 6; pass++)
        {
            for (var i = 0; i < 60; i++)
            {
                round();
            }

            Thread.Sleep(200);
        }
    }

    public static long Check(long result, string what) =>
        result < 0 ? throw new InvalidOperationException($"{what} failed: {result}") : result;
}

/// <summary>What backs the anonymous memory a benchmark maps.</summary>
public enum Backing
{
    /// <summary>Base pages, one folio each.</summary>
    Pages4K,

    /// <summary>Transparent huge pages (2 MiB folios).</summary>
    Thp,

    /// <summary>hugetlb 1 GiB pages.</summary>
    HugeTlb1G,
}
