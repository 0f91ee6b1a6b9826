using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Vfio;

namespace KernelModel.Tests.Vfio;

public class VmaLookupTests : VfioTestBase
{
    private const ulong Length = FakeMachine.RegionSize;
    private const ulong Page = 4096;

    public enum VmaKind
    {
        DevMem,
        Anonymous,
        SharedAnonymous,
        DeviceNotOptedIn,
    }

    [Fact]
    public void GetDeviceFromVma_VfioMmapOfOptedInDevice_ReturnsDeviceWithReference()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var vma = p.Mm.FindVma((ulong)p.MmapRegion(fd, Length))!;
        var before = device.RefCount;

        var found = machine.Vfio.GetDeviceFromVma(vma);

        Assert.True(found.IsOk);
        Assert.Same(device, found.Value);
        Assert.Equal(before + 1, device.RefCount);
        found.Value.Put();
        Assert.Equal(before, device.RefCount);
    }

    [Theory]
    [InlineData(VmaKind.DevMem)]
    [InlineData(VmaKind.Anonymous)]
    [InlineData(VmaKind.SharedAnonymous)]
    [InlineData(VmaKind.DeviceNotOptedIn)]
    public void GetDeviceFromVma_NotAnOptedInVfioMapping_ReturnsEnodev(VmaKind kind)
    {
        var (machine, p) = CreateSut();
        var noP2p = VfioDeviceOf(machine, FakeMachine.NoP2pDevice);
        var va = kind switch
        {
            // /dev/mem over the very same MMIO: a PFNMAP VMA, but not a vfio device's.
            VmaKind.DevMem => p.Mmap(0, Length, Prot.Read | Prot.Write, MapFlags.Shared, p.Open("/dev/mem"), FakeMachine.RegionStart),
            VmaKind.Anonymous => p.Mmap(0, Length, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous),
            VmaKind.SharedAnonymous => p.Mmap(0, Length, Prot.Read | Prot.Write, MapFlags.Shared | MapFlags.Anonymous),
            _ => p.MmapRegion(p.OpenDevice(FakeMachine.NoP2pGroup, FakeMachine.NoP2pDevice).Device, Length),
        };
        Assert.True(va > 0, $"mmap: {va}");
        var vma = p.Mm.FindVma((ulong)va)!;
        var before = noP2p.RefCount;

        var found = machine.Vfio.GetDeviceFromVma(vma);

        Assert.Equal(Errno.ENODEV, found.Error);
        Assert.Equal(before, noP2p.RefCount);
    }

    [Fact]
    public void VmaToPfn_WholeMapping_ReturnsTheRegionsPfns()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var vma = p.Mm.FindVma((ulong)p.MmapRegion(fd, Length))!;

        var run = device.VmaToPfn(vma, 0, Length);

        Assert.True(run.IsOk);
        Assert.Equal(new PfnRun(new Pfn(FakeMachine.RegionStart / Page), Length / Page), run.Value);
    }

    [Fact]
    public void VmaToPfn_OffsetMappingAndRange_ComputesFromRegionWithoutFaulting()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var vma = p.Mm.FindVma((ulong)p.MmapRegion(fd, 4 * Page, offsetInRegion: 2 * Page))!;

        var run = device.VmaToPfn(vma, Page, 2 * Page);

        Assert.True(run.IsOk);
        Assert.Equal(new PfnRun(new Pfn((FakeMachine.RegionStart / Page) + 3), 2), run.Value);
        // No page of the VMA was ever touched: the pfns came from the region, not a page walk.
        Assert.Equal(0, p.Mm.RssPages);
    }

    [Fact]
    public void VmaToPfn_AfterZap_StillReturnsTheRegionsPfns()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var va = (ulong)p.MmapRegion(fd, Length);
        var vma = p.Mm.FindVma(va)!;
        p.ReadMemory(va, new byte[1]);
        device.UnmapMappingRange(0, 0);

        var run = device.VmaToPfn(vma, 0, Page);

        Assert.True(run.IsOk);
        Assert.Equal(new Pfn(FakeMachine.RegionStart / Page), run.Value.Start);
    }

    [Theory]
    [InlineData(0UL, 0UL)]
    [InlineData(0UL, Length + Page)]
    [InlineData(Length, Page)]
    [InlineData(1UL, Page)]
    public void VmaToPfn_RangeOutsideTheVma_ReturnsEinval(ulong offset, ulong length)
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var vma = p.Mm.FindVma((ulong)p.MmapRegion(fd, Length))!;

        var run = device.VmaToPfn(vma, offset, length);

        Assert.Equal(Errno.EINVAL, run.Error);
    }

    [Fact]
    public void VmaToPfn_VmaOfAnotherDevice_ReturnsEinval()
    {
        var (machine, p) = CreateSut();
        var other = VfioDeviceOf(machine, FakeMachine.PairFirst);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var vma = p.Mm.FindVma((ulong)p.MmapRegion(fd, Length))!;

        var run = other.VmaToPfn(vma, 0, Page);

        Assert.Equal(Errno.EINVAL, run.Error);
    }
}
