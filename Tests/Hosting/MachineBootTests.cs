using System.IO;
using KernelModel.Iommu;
using KernelModel.Kernel;

namespace KernelModel.Tests.Hosting;

public class MachineBootTests : MachineTestBase
{
    private const ulong G1 = 1UL << 30;

    // 1 TiB of RAM: 3 GiB below the PCI hole and the rest above the default devices' BARs.
    internal static MachineSpec OneTebibyteSpec() => MachineSpec.Default with
    {
        Name = "1tib",
        Ram =
        [
            new RangeSpec { Start = 0, Size = 3 * G1 },
            new RangeSpec { Start = 512 * G1, Size = 1021 * G1 },
        ],
    };

    private static MachineSpec WithRam(params (ulong Start, ulong Size)[] ram) => MachineSpec.Default with
    {
        Ram = [.. ram.Select(r => new RangeSpec { Start = r.Start, Size = r.Size })],
    };

    [Fact]
    public void Boot_OneTebibyteOfRam_IsSparse()
    {
        var before = GC.GetAllocatedBytesForCurrentThread();

        var machine = Boot(OneTebibyteSpec());

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal((1UL << 40) >> 12, machine.Memory.TotalPages);
        Assert.Equal(machine.Memory.TotalPages, machine.Memory.FreePages);
        Assert.Equal(0, machine.Memory.PopulatedSections);
        Assert.Equal(0, machine.Memory.LiveFolios);
        Assert.InRange(allocated, 0, 50L << 20);
    }

    [Fact]
    public void Boot_Default_BuildsGroupsDevicesAndMmio()
    {
        var machine = Boot();

        Assert.Equal(new[] { 1, 2, 3 }, machine.IommuGroups.Select(g => g.Id.Value));
        Assert.True(machine.TryGetGroup(new IommuGroupId(3), out var group3));
        Assert.Equal(["0000:03:00.0", "0000:03:00.1"], group3.Devices.Select(d => d.Name));
        Assert.Equal(ReservedRegionType.Msi, Assert.Single(group3.ReservedRegions).Type);
        Assert.True(machine.TryGetDevice("0000:02:00.0", out var gpu));
        Assert.Equal(2, gpu.Mmio.Count);
        Assert.Equal(32UL << 30, gpu.Mmio[1].Size);
        Assert.Same(machine.IommuGroups.Single(g => g.Id.Value == 2), gpu.IommuGroup);
        Assert.Equal(5, machine.Memory.Mmio.Count);
        Assert.False(machine.Memory.IsValidPfn(new Pfn(0xfb000000 >> 12)));
        Assert.Contains("/dev/mem", machine.DevNodes);
    }

    public static TheoryData<string, MachineSpec> BadSpecs => new()
    {
        { "unknown arch", MachineSpec.Default with { Arch = "riscv" } },
        { "not page aligned", WithRam((0x800, G1)) },
        { "not page aligned", WithRam((0, G1 + 1)) },
        { "not page aligned", WithRam((0, 0)) },
        { "overlap", WithRam((0, 2 * G1), (G1, 2 * G1)) },
        { "IOMMU page sizes", MachineSpec.Default with { Iommu = new IommuSpec { PageSizes = [8192] } } },
        { "IOMMU page sizes", MachineSpec.Default with { Iommu = new IommuSpec { PageSizes = [] } } },
        { "appears twice", MachineSpec.Default with { Devices = [MachineSpec.Default.Devices[0], MachineSpec.Default.Devices[0]] } },
        { "overlapping", MachineSpec.Default with { Devices = [MachineSpec.Default.Devices[0] with { Mmio = [new MmioSpec { Name = "BAR0", Start = 0, Size = 4096 }] }] } },
    };

    [Theory]
    [MemberData(nameof(BadSpecs))]
    public void Boot_BadSpec_ThrowsInvalidDataExceptionWithReason(string reason, MachineSpec spec)
    {
        var e = Assert.Throws<InvalidDataException>(() => Machine.Boot(spec));

        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RegisterDevNode_PathTaken_ReturnsEexist()
    {
        var machine = Boot();

        var result = machine.RegisterDevNode("/dev/mem", () => Errno.ENODEV);

        Assert.Equal(Errno.EEXIST, result.Error);
    }

    [Fact]
    public void UnregisterDevNode_ThenOpen_ReturnsEnoent()
    {
        var machine = Boot();
        var process = machine.Spawn();

        var removed = machine.UnregisterDevNode("/dev/mem");
        var again = machine.UnregisterDevNode("/dev/mem");

        Assert.True(removed.IsOk);
        Assert.Equal(Errno.ENOENT, again.Error);
        Assert.Equal(-(int)Errno.ENOENT, process.Open("/dev/mem"));
    }

    [Fact]
    public void AllocateDomain_Default_HasMachineBitmapAndFortyEightBitAperture()
    {
        var machine = Boot();

        var domain = machine.AllocateDomain();

        Assert.Equal(machine.IommuPageSizeBitmap, domain.PageSizeBitmap);
        Assert.Equal((1UL << 48) - 1, domain.ApertureEnd.Value);
    }

    [Fact]
    public void Spawn_TwoProcesses_GetDistinctPidsAndAddressSpaces()
    {
        var machine = Boot();

        var a = machine.Spawn();
        var b = machine.Spawn(new ProcessOptions { MemlockLimit = 1 << 20, CapIpcLock = true });

        Assert.NotEqual(a.Pid, b.Pid);
        Assert.NotSame(a.Mm, b.Mm);
        Assert.Equal((1UL << 20, true), (b.Mm.MemlockLimit, b.Mm.CapIpcLock));
        Assert.Equal((8UL << 20, false), (a.Mm.MemlockLimit, a.Mm.CapIpcLock));
    }
}
