using KernelModel.Kernel;
using KernelModel.Pci.Config;
using KernelModel.Pci.VfioPci;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Tests.Pci;

/// <summary>DEVICE_GET_INFO, GET_REGION_INFO (the layout of every region and its capabilities) and GET_IRQ_INFO.</summary>
public sealed class VfioPciInfoTests : PciTestBase
{
    private const uint R = VFIO_REGION_INFO_FLAG_READ;
    private const uint W = VFIO_REGION_INFO_FLAG_WRITE;
    private const uint M = VFIO_REGION_INFO_FLAG_MMAP;
    private const uint C = VFIO_REGION_INFO_FLAG_CAPS;

    public static TheoryData<string, uint> DeviceFlags => new()
    {
        { PciSut.Nic, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET },
        { PciSut.Gpu, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET },
        // Two functions on the bus and no FLR: no reset of the function alone, only hot reset.
        { PciSut.Fn0, VFIO_DEVICE_FLAGS_PCI },
        { PciSut.Fn1, VFIO_DEVICE_FLAGS_PCI },
    };

    [Theory]
    [MemberData(nameof(DeviceFlags))]
    public void GetInfo_EachDevice_ReportsPciFlagsNineRegionsFiveIrqs(string device, uint flags)
    {
        var sut = CreateSut(devices: device);

        var (r, info) = sut.Process.GetDeviceInfo(sut.Fd(device));

        Assert.Equal(0, r);
        Assert.Equal(flags, info.Flags);
        Assert.Equal(9u, info.NumRegions);
        Assert.Equal(5u, info.NumIrqs);
        Assert.Equal(0u, info.CapOffset);
    }

    [Fact]
    public void GetInfo_ArgszWithoutCapOffset_LeavesCapOffsetUntouched()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        var (r, info) = sut.Process.GetDeviceInfo(sut.Fd(PciSut.Nic), argsz: 16);

        Assert.Equal(0, r);
        Assert.Equal(0xdeadu, info.CapOffset);
    }

    [Fact]
    public void GetInfo_ArgszBelowMinimum_ReturnsEinval()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.GetDeviceInfo(sut.Fd(PciSut.Nic), argsz: 15).Result);
    }

    public static TheoryData<string, uint, ulong, uint> Regions => new()
    {
        { PciSut.Nic, 0, 64UL << 10, R | W | M | C },
        { PciSut.Nic, 1, 0, 0 },
        { PciSut.Nic, 5, 0, 0 },
        { PciSut.Nic, VFIO_PCI_ROM_REGION_INDEX, 0, 0 },
        { PciSut.Nic, VFIO_PCI_CONFIG_REGION_INDEX, 4096, R | W },
        { PciSut.Gpu, 0, 16UL << 20, R | W | M },
        { PciSut.Gpu, 1, 0, 0 },
        { PciSut.Gpu, 2, 32UL << 30, R | W | M },
        // The upper half of the 64-bit BAR2.
        { PciSut.Gpu, 3, 0, 0 },
        { PciSut.Gpu, VFIO_PCI_ROM_REGION_INDEX, 128UL << 10, R },
        { PciSut.Fn0, 0, 1UL << 20, R | W | M },
        // An I/O BAR: read and write through the fd, never mmap.
        { PciSut.Fn0, 2, 32, R | W },
        { PciSut.Fn1, 2, 0, 0 },
    };

    [Theory]
    [MemberData(nameof(Regions))]
    public void GetRegionInfo_EachRegion_ReportsSizeFlagsAndIndexOffset(string device, uint index, ulong size, uint flags)
    {
        var sut = CreateSut(devices: device);

        var (info, _) = sut.Process.GetRegionInfoWithCaps(sut.Fd(device), index);

        Assert.Equal(size, info.Size);
        Assert.Equal(flags, info.Flags);
        Assert.Equal((ulong)index << 40, info.Offset);
    }

    [Theory]
    [InlineData(VFIO_PCI_VGA_REGION_INDEX)]
    [InlineData(VFIO_PCI_NUM_REGIONS)]
    [InlineData(100)]
    public void GetRegionInfo_NoSuchRegion_ReturnsEinval(uint index)
    {
        var sut = CreateSut(devices: PciSut.Gpu);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.GetRegionInfo(sut.Fd(PciSut.Gpu), index).Result);
    }

    [Fact]
    public void GetRegionInfo_ArgszBelowMinimum_ReturnsEinval()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.GetRegionInfo(sut.Fd(PciSut.Nic), 0, argsz: 31).Result);
    }

    [Theory]
    [InlineData(true, 40u)]
    [InlineData(false, 80u)]
    public void GetRegionInfo_CapsDoNotFit_GrowsArgszAndLeavesCapOffsetZero(bool mappable, uint needed)
    {
        var sut = CreateSut(settings: new MachineSettings { MsixMappable = mappable }, devices: PciSut.Nic);

        var (r, info, _) = sut.Process.GetRegionInfo(sut.Fd(PciSut.Nic), 0);

        Assert.Equal(0, r);
        Assert.Equal(needed, info.Argsz);
        Assert.Equal(0u, info.CapOffset);
        Assert.Equal(C, info.Flags & C);
    }

    [Fact]
    public void GetRegionInfo_MsixBarByDefault_CarriesOnlyMsixMappable()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        var (info, buffer) = sut.Process.GetRegionInfoWithCaps(sut.Fd(PciSut.Nic), 0);

        Assert.Equal(32u, info.CapOffset);
        Assert.Equal([((ushort)VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, (ushort)1, 32)], PciUapi.Caps(buffer, info.CapOffset));
    }

    public static TheoryData<string, bool, (ulong, ulong)[]> SparseLayouts => new()
    {
        // 4 KiB pages: only the table's page (0x3000) is cut out; the registers around it stay fast.
        { PciSut.Nic, false, [(0, 0x3000), (0x4000, 0xc000)] },
        // 64 KiB pages: the whole second page goes, registers at 0x10000-0x1dfff with it.
        { PciSut.Ppc64Nic, true, [(0, 0x10000)] },
    };

    [Theory]
    [MemberData(nameof(SparseLayouts))]
    public void GetRegionInfo_MsixBarOldPolicy_SparseMmapLeavesOutTheTablePages(string device, bool ppc64, (ulong, ulong)[] areas)
    {
        var sut = CreateSut(ppc64 ? MachineSpec.Ppc64 : null, OldMsixPolicy, device);

        var (info, buffer) = sut.Process.GetRegionInfoWithCaps(sut.Fd(device), 0);

        var caps = PciUapi.Caps(buffer, info.CapOffset);
        var (id, version, at) = Assert.Single(caps);
        Assert.Equal(VFIO_REGION_INFO_CAP_SPARSE_MMAP, id);
        Assert.Equal(1, version);
        Assert.Equal(areas, PciUapi.SparseAreas(buffer, at));
        Assert.Equal(M, info.Flags & M);
    }

    public static TheoryData<string, uint, uint, uint> IrqInfo => new()
    {
        { PciSut.Nic, VFIO_PCI_INTX_IRQ_INDEX, 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED },
        { PciSut.Nic, VFIO_PCI_MSI_IRQ_INDEX, 4, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
        { PciSut.Nic, VFIO_PCI_MSIX_IRQ_INDEX, 64, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
        { PciSut.Nic, VFIO_PCI_ERR_IRQ_INDEX, 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
        { PciSut.Nic, VFIO_PCI_REQ_IRQ_INDEX, 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
        { PciSut.Gpu, VFIO_PCI_MSIX_IRQ_INDEX, 0, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
        { PciSut.Gpu, VFIO_PCI_MSI_IRQ_INDEX, 1, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
        { PciSut.Fn1, VFIO_PCI_MSI_IRQ_INDEX, 2, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE },
    };

    [Theory]
    [MemberData(nameof(IrqInfo))]
    public void GetIrqInfo_EachIndex_ReportsCountAndFlags(string device, uint index, uint count, uint flags)
    {
        var sut = CreateSut(devices: device);

        var (r, info) = sut.Process.GetIrqInfo(sut.Fd(device), index);

        Assert.Equal(0, r);
        Assert.Equal(count, info.Count);
        Assert.Equal(flags, info.Flags);
    }

    [Theory]
    [InlineData(VFIO_PCI_NUM_IRQS, 16u)]
    [InlineData(0u, 15u)]
    public void GetIrqInfo_BadIndexOrArgsz_ReturnsEinval(uint index, uint argsz)
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.GetIrqInfo(sut.Fd(PciSut.Nic), index, argsz).Result);
    }

    [Fact]
    public void GetIrqInfo_ErrOnConventionalPci_ReturnsEinval()
    {
        var sut = CreateSut(ConventionalNicSpec(), devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.GetIrqInfo(sut.Fd(PciSut.Nic), VFIO_PCI_ERR_IRQ_INDEX).Result);
    }

    [Fact]
    public void UnknownIoctl_ReturnsEnotty()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.ENOTTY, sut.Process.Ioctl(sut.Fd(PciSut.Nic), VFIO_DEVICE_IOEVENTFD, new byte[32]));
    }

    [Fact]
    public void Ppc64Nic_BarAbove4G_Is64BitPrefetchableByDefault()
    {
        var sut = CreateSut(MachineSpec.Ppc64, devices: PciSut.Ppc64Nic);

        var bar = sut.Function(PciSut.Ppc64Nic).Bars[0];

        Assert.True(bar.Is64Bit);
        Assert.True(bar.Prefetchable);
        Assert.Equal(PciBarBits.MemType64 | PciBarBits.Prefetch, (PciBarBits)(sut.Process.ConfigRead32(sut.Fd(PciSut.Ppc64Nic), 0x10) & 0xf));
        Assert.Equal(0x3fe0u, sut.Process.ConfigRead32(sut.Fd(PciSut.Ppc64Nic), 0x14));
    }

    /// <summary>The default machine with the NIC turned into a conventional PCI function (no PCIe capability).</summary>
    internal static MachineSpec ConventionalNicSpec()
    {
        var spec = MachineSpec.Default;
        var props = System.Text.Json.JsonDocument.Parse("""{ "vendorId": "0x8086", "deviceId": "0x100e", "classCode": "0x020000", "msi": { "vectors": 1 } }""").RootElement;
        return spec with { Devices = [spec.Devices[0] with { Properties = props }, .. spec.Devices.Skip(1)] };
    }

    [Fact]
    public void VfioPciRegions_IndexToOffset_IsIndexShiftedBy40()
    {
        Assert.Equal(7UL << 40, VfioPciRegions.IndexToOffset(VFIO_PCI_CONFIG_REGION_INDEX));
        Assert.Equal(2UL, VfioPciRegions.OffsetToIndex((2UL << 40) | 0x1234));
        Assert.Equal(0x1234UL, ((2UL << 40) | 0x1234) & VfioPciRegions.OffsetMask);
    }
}
