using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Pci.Config;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Tests.Pci;

/// <summary>BAR mmaps: the device address space, the fault handler, zaps under memory_lock, SIGBUS and VmaToPfn.</summary>
public sealed class VfioPciMmapTests : PciTestBase
{
    [Fact]
    public void Mmap_Bar_IsPfnmapIoWithTheRegionEncodingInPgoff()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        var va = sut.MapBar(PciSut.Nic, 0, 0x1000, 0x2000);

        var vma = sut.Process.Mm.FindVma(va)!;
        Assert.Equal(VmFlags.Io | VmFlags.PfnMap | VmFlags.DontExpand | VmFlags.DontDump, vma.Flags & (VmFlags.Io | VmFlags.PfnMap | VmFlags.DontExpand | VmFlags.DontDump));
        Assert.Equal(((ulong)PciSut.RegionOffset(0) + 0x1000) >> 12, vma.PgOff);
        Assert.Equal(1, sut.Vfio(PciSut.Nic).Mapping.MappedVmaCount);
    }

    [Fact]
    public void Mmap_TouchedBar_FaultsOnceAndReachesTheBarMemory()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var va = sut.MapBar(PciSut.Nic, 0, 0, 0x10000);

        sut.Process.Write32(va + 0x2000, 0x12345678);
        var second = sut.Process.Read32(va + 0x8000);

        var back = new byte[4];
        sut.Function(PciSut.Nic).Bars[0].Region!.Read(0x2000, back);
        Assert.Equal(0x12345678u, BitConverter.ToUInt32(back));
        Assert.Equal(0u, second);
        Assert.Equal(1, sut.Vfio(PciSut.Nic).Faults);
        Assert.Equal(0, sut.Vfio(PciSut.Nic).SlowPathAccesses);
    }

    [Fact]
    public void Mmap_Gpu32GiBBar_MapsTheWholeVmaWithOneFault()
    {
        var sut = CreateSut(devices: PciSut.Gpu);
        var va = sut.MapBar(PciSut.Gpu, 2, 0, 32UL << 30);

        sut.Process.Write32(va + (31UL << 30), 1);
        sut.Process.Write32(va, 2);

        Assert.Equal(1, sut.Vfio(PciSut.Gpu).Faults);
        Assert.Equal((long)((32UL << 30) >> 12), sut.Process.Mm.RssPages);
    }

    public static TheoryData<int, ulong, ulong, MapFlags> BadMmaps => new()
    {
        // MAP_PRIVATE of device memory.
        { 0, 0, 0x1000, MapFlags.Private },
        // Beyond the BAR.
        { 0, 0xf000, 0x2000, MapFlags.Shared },
        // Unimplemented BAR, the ROM, config space, VGA, no such region.
        { 1, 0, 0x1000, MapFlags.Shared },
        { VFIO_PCI_ROM_REGION_INDEX, 0, 0x1000, MapFlags.Shared },
        { VFIO_PCI_CONFIG_REGION_INDEX, 0, 0x1000, MapFlags.Shared },
        { VFIO_PCI_VGA_REGION_INDEX, 0, 0x1000, MapFlags.Shared },
        { VFIO_PCI_NUM_REGIONS, 0, 0x1000, MapFlags.Shared },
    };

    [Theory]
    [MemberData(nameof(BadMmaps))]
    public void Mmap_NotAMappableBarRange_ReturnsEinval(int index, ulong offset, ulong length, MapFlags flags)
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.MmapRegion(sut.Fd(PciSut.Nic), index, offset, length, flags: flags));
    }

    [Fact]
    public void Mmap_IoBar_ReturnsEinval()
    {
        var sut = CreateSut(devices: [PciSut.Fn0, PciSut.Fn1]);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.MmapRegion(sut.Fd(PciSut.Fn0), 2, 0, 0x1000));
    }

    [Fact]
    public void CommandWrite_MemoryOff_ZapsEveryMmapAndTheNextTouchIsSigbus()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var fd = sut.Fd(PciSut.Nic);
        var va = sut.MapBar(PciSut.Nic, 0, 0, 0x10000);
        p.Read32(va);
        var zapped = p.Mm.ZappedEntries;
        var cmd = p.ConfigRead16(fd, (int)PciConfigOffset.Command);

        p.ConfigWrite16(fd, (int)PciConfigOffset.Command, (ushort)(cmd & ~(ushort)PciCommand.Memory));

        Assert.True(p.Mm.ZappedEntries > zapped);
        Assert.Equal(0, p.Mm.RssPages);
        Assert.Equal(-(long)Errno.EFAULT, p.ReadMemory(va, new byte[4]));
        Assert.Equal(new SignalInfo(SignalInfo.SIGBUS, va), Assert.Single(p.Signals));
    }

    [Fact]
    public void CommandWrite_MemoryBackOn_MmapRefaults()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var fd = sut.Fd(PciSut.Nic);
        var va = sut.MapBar(PciSut.Nic, 0, 0, 0x10000);
        var cmd = p.ConfigRead16(fd, (int)PciConfigOffset.Command);
        p.ConfigWrite16(fd, (int)PciConfigOffset.Command, (ushort)(cmd & ~(ushort)PciCommand.Memory));
        Assert.Equal(-(long)Errno.EFAULT, p.ReadMemory(va, new byte[4]));

        p.ConfigWrite16(fd, (int)PciConfigOffset.Command, cmd);

        Assert.Equal(0u, p.Read32(va));
        Assert.Equal(2, sut.Vfio(PciSut.Nic).Faults);
    }

    [Fact]
    public void Zap_TwoMmapsOfTheBar_OneZapReachesBoth()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var fd = sut.Fd(PciSut.Nic);
        var va1 = sut.MapBar(PciSut.Nic, 0, 0, 0x4000);
        var va2 = sut.MapBar(PciSut.Nic, 0, 0x8000, 0x4000);
        p.Read32(va1);
        p.Read32(va2);
        var cmd = p.ConfigRead16(fd, (int)PciConfigOffset.Command);

        p.ConfigWrite16(fd, (int)PciConfigOffset.Command, (ushort)(cmd & ~(ushort)PciCommand.Memory));

        Assert.Equal(2, sut.Vfio(PciSut.Nic).Mapping.MappedVmaCount);
        Assert.Equal(0, p.Mm.RssPages);
    }

    [Fact]
    public void DeviceReset_ZapsMmapsResetsTheFunctionAndMmapsRefault()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var va = sut.MapBar(PciSut.Nic, 0, 0, 0x10000);
        p.Write32(va + 0x100, 7);
        var zapped = p.Mm.ZappedEntries;
        var resets = sut.Function(PciSut.Nic).FunctionResets;

        Assert.Equal(0, p.Ioctl(sut.Fd(PciSut.Nic), VFIO_DEVICE_RESET, 0UL));

        Assert.True(p.Mm.ZappedEntries > zapped);
        Assert.Equal(resets + 1, sut.Function(PciSut.Nic).FunctionResets);
        Assert.Equal(7u, p.Read32(va + 0x100));
        Assert.Equal(2, sut.Vfio(PciSut.Nic).Faults);
        Assert.Empty(p.Signals);
    }

    [Fact]
    public void DeviceReset_RestoresTheBarsTheResetCleared()
    {
        var sut = CreateSut(devices: PciSut.Gpu);

        Assert.Equal(0, sut.Process.Ioctl(sut.Fd(PciSut.Gpu), VFIO_DEVICE_RESET, 0UL));

        var gpu = sut.Function(PciSut.Gpu);
        Assert.Equal(0x4000000000UL, (gpu.ReadConfigDword(0x18) & ~0xfUL) | ((ulong)gpu.ReadConfigDword(0x1c) << 32));
        Assert.True(sut.Function(PciSut.Gpu).MemoryEnabled);
    }

    [Fact]
    public void DeviceReset_NoFunctionReset_ReturnsEinval()
    {
        var sut = CreateSut(devices: [PciSut.Fn0, PciSut.Fn1]);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.Ioctl(sut.Fd(PciSut.Fn0), VFIO_DEVICE_RESET, 0UL));
    }

    [Fact]
    public void ExpressFlrBit_WrittenThroughConfig_ResetsWithMmapsZapped()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var fd = sut.Fd(PciSut.Nic);
        var va = sut.MapBar(PciSut.Nic, 0, 0, 0x10000);
        p.Read32(va);
        var exp = sut.Function(PciSut.Nic).ExpCap;
        var resets = sut.Function(PciSut.Nic).FunctionResets;

        p.ConfigWrite16(fd, exp + (int)PciExpOffset.DevCtl, (ushort)PciExpDevCtl.BcrFlr);

        Assert.Equal(resets + 1, sut.Function(PciSut.Nic).FunctionResets);
        Assert.Equal(0, p.Mm.RssPages);
        Assert.Equal(0, p.ConfigRead16(fd, exp + (int)PciExpOffset.DevCtl) & (int)PciExpDevCtl.BcrFlr);
        Assert.Equal(0u, p.Read32(va));
    }

    [Fact]
    public void PowerStateD3Hot_ThroughPmcsr_ZapsAndFaultsSigbusUntilD0()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var fd = sut.Fd(PciSut.Nic);
        var va = sut.MapBar(PciSut.Nic, 0, 0, 0x10000);
        p.Read32(va);
        var ctrl = sut.Function(PciSut.Nic).PmCap + (int)PciPmOffset.Ctrl;

        p.ConfigWrite16(fd, ctrl, 3);
        Assert.Equal(3, sut.Function(PciSut.Nic).PowerState);
        Assert.Equal(-(long)Errno.EFAULT, p.ReadMemory(va, new byte[4]));

        p.ConfigWrite16(fd, ctrl, 0);
        Assert.Equal(0u, p.Read32(va));
    }

    [Fact]
    public void VmaToPfn_FromPgoffAlone_EvenWhenZapped()
    {
        var sut = CreateSut(devices: PciSut.Gpu);
        var va = sut.MapBar(PciSut.Gpu, 2, 0x200000, 0x400000);
        var vma = sut.Process.Mm.FindVma(va)!;
        var vdev = sut.Vfio(PciSut.Gpu);

        var run = vdev.VmaToPfn(vma, 0x1000, 0x2000);

        Assert.True(run.IsOk);
        Assert.Equal(new Pfn((0x4000000000UL + 0x200000 + 0x1000) >> 12), run.Value.Start);
        Assert.Equal(2UL, run.Value.Count);
        Assert.Equal(0, sut.Process.Mm.RssPages);
    }

    public static TheoryData<ulong, ulong> BadVmaToPfn => new()
    {
        { 0, 0 },
        { 0x800, 0x1000 },
        { 0, 0x801 },
        { 0x3000, 0x2000 },
        { 0x400000, 0x1000 },
    };

    [Theory]
    [MemberData(nameof(BadVmaToPfn))]
    public void VmaToPfn_OutsideTheVmaOrUnaligned_ReturnsEinval(ulong offset, ulong length)
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var vma = sut.Process.Mm.FindVma(sut.MapBar(PciSut.Nic, 0, 0, 0x4000))!;

        Assert.Equal(Errno.EINVAL, sut.Vfio(PciSut.Nic).VmaToPfn(vma, offset, length).Error);
    }

    [Fact]
    public void VmaToPfn_AnotherDevicesVma_ReturnsEinval()
    {
        var sut = CreateSut(devices: [PciSut.Nic, PciSut.Gpu]);
        var gpuVma = sut.Process.Mm.FindVma(sut.MapBar(PciSut.Gpu, 0, 0, 0x1000))!;

        Assert.Equal(Errno.EINVAL, sut.Vfio(PciSut.Nic).VmaToPfn(gpuVma, 0, 0x1000).Error);
    }

    [Fact]
    public void GetDeviceFromVma_BarMmap_FindsTheOptedInDevice()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var vma = sut.Process.Mm.FindVma(sut.MapBar(PciSut.Nic, 0, 0, 0x1000))!;

        var found = sut.Machine.Vfio.GetDeviceFromVma(vma);

        Assert.Same(sut.Vfio(PciSut.Nic), found.Value);
        found.Value.Put();
    }
}
