using KernelModel.Kernel;
using KernelModel.Mm;
using static KernelModel.Tests.Vfio.VfioUser;

namespace KernelModel.Tests.Vfio;

public class DeviceMmapTests : VfioTestBase
{
    private const ulong Length = FakeMachine.RegionSize;
    private const ulong Page = 4096;

    private static bool Present(UserProcess p, ulong va) => p.Mm.TryGetPte(va, out _, out _);

    [Fact]
    public void Mmap_Region_SetsPfnMapFlagsAndKeepsRegionEncodingInPgoff()
    {
        var (_, p) = CreateSut();
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);

        var va = p.MmapRegion(fd, 4 * Page, offsetInRegion: 2 * Page);

        Assert.True(va > 0, $"mmap: {va}");
        var vma = p.Mm.FindVma((ulong)va)!;
        Assert.Equal(VmFlags.Io | VmFlags.PfnMap, vma.Flags & (VmFlags.Io | VmFlags.PfnMap));
        Assert.Equal(2UL, vma.PgOff);
    }

    [Fact]
    public void Mmap_TwoFds_ShareTheDeviceAddressSpace()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group, first) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var second = (int)p.GetDeviceFd(group, FakeMachine.Device);

        p.MmapRegion(first, Length);
        p.MmapRegion(second, Length);

        Assert.Same(p.Files.Get(first).Value.Mapping, p.Files.Get(second).Value.Mapping);
        Assert.Same(device.Mapping, p.Files.Get(first).Value.Mapping);
        Assert.Equal(2, device.Mapping.MappedVmaCount);
    }

    [Fact]
    public void Mmap_CpuAccess_ReachesTheDeviceRegion()
    {
        var (machine, p) = CreateSut();
        var (_, group, first) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var second = (int)p.GetDeviceFd(group, FakeMachine.Device);
        var a = (ulong)p.MmapRegion(first, Length);
        var b = (ulong)p.MmapRegion(second, Length);

        p.WriteMemory(a + 0x100, [1, 2, 3, 4]);
        var throughOther = new byte[4];
        p.ReadMemory(b + 0x100, throughOther);
        var inRegion = new byte[4];
        machine.Memory.Read(new PhysAddr(FakeMachine.RegionStart + 0x100), inRegion);

        Assert.Equal([1, 2, 3, 4], throughOther);
        Assert.Equal([1, 2, 3, 4], inRegion);
    }

    [Fact]
    public void UnmapMappingRange_Device_ZapsMmapsOfEveryFdAndRefaultWorks()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, group, first) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var second = (int)p.GetDeviceFd(group, FakeMachine.Device);
        var a = (ulong)p.MmapRegion(first, Length);
        var b = (ulong)p.MmapRegion(second, Length);
        p.ReadMemory(a, new byte[1]);
        p.ReadMemory(b, new byte[1]);
        Assert.True(Present(p, a) && Present(p, b));

        device.UnmapMappingRange(0, 0);

        Assert.False(Present(p, a));
        Assert.False(Present(p, b));
        Assert.Equal(1, p.ReadMemory(b + Page, new byte[1]));
        Assert.True(Present(p, b + Page));
        Assert.Empty(p.Signals);
    }

    [Fact]
    public void UnmapMappingRange_PartOfRegion_ZapsOnlyThatPart()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var va = (ulong)p.MmapRegion(fd, Length);
        p.ReadMemory(va, new byte[1]);

        device.UnmapMappingRange(Page, Page);

        Assert.True(Present(p, va));
        Assert.False(Present(p, va + Page));
        Assert.True(Present(p, va + (2 * Page)));
        Assert.Equal(1, p.ReadMemory(va + Page, new byte[1]));
        Assert.True(Present(p, va + Page));
    }

    public static TheoryData<ulong, ulong, ulong, MapFlags> InvalidMaps => new()
    {
        { Length, 0, 0, MapFlags.Private },
        { Length + Page, 0, 0, MapFlags.Shared },
        { 2 * Page, Length - Page, 0, MapFlags.Shared },
        { Page, 0, 1, MapFlags.Shared },
    };

    [Theory]
    [MemberData(nameof(InvalidMaps))]
    public void Mmap_OutsideTheRegionOrPrivate_ReturnsEinval(ulong length, ulong offsetInRegion, ulong index, MapFlags flags)
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);

        var result = p.MmapRegion(fd, length, offsetInRegion, index, flags);

        Assert.Equal(Err(Errno.EINVAL), result);
        Assert.Equal(0, device.Mapping.MappedVmaCount);
        Assert.Empty(p.Mm.Vmas);
    }

    [Fact]
    public void Munmap_LowerHalf_UpperVmaKeepsItsRegionOffset()
    {
        var (machine, p) = CreateSut();
        var device = VfioDeviceOf(machine, FakeMachine.Device);
        var (_, _, fd) = p.OpenDevice(FakeMachine.Group, FakeMachine.Device);
        var va = (ulong)p.MmapRegion(fd, 4 * Page);
        p.WriteMemory(va + (2 * Page), [0x5a]);
        device.UnmapMappingRange(0, 0);

        p.Munmap(va, 2 * Page);

        var upper = p.Mm.FindVma(va + (2 * Page))!;
        Assert.Equal(2UL, upper.PgOff);
        Assert.Equal(new Pfn((FakeMachine.RegionStart / Page) + 2), device.VmaToPfn(upper, 0, Page).Value.Start);
        var read = new byte[1];
        Assert.Equal(1, p.ReadMemory(va + (2 * Page), read));
        Assert.Equal(0x5a, read[0]);
        Assert.Equal(1, device.Mapping.MappedVmaCount);
    }
}
