using System.Buffers.Binary;
using KernelModel.Iommu;
using KernelModel.Kernel;
using KernelModel.Vfio;

namespace KernelModel.Tests.Type1;

/// <summary>
/// IVfioIommuEmulatedAccess on a type1 container: external pins with per-page references, dma_rw,
/// and what UNMAP_DMA and device release do when an emulated device holds pins.
/// </summary>
public sealed class Type1EmulatedAccessTests
{
    private const ulong Iova = 0x1_0000_0000;
    private const ulong Page = 4096;
    private const ulong MiB = 1UL << 20;
    private const IommuProt Rw = IommuProt.Read | IommuProt.Write;

    // Groups 1 (the NIC) and 3 (the emulated device) in one v2 container, the emulated device open,
    // and 16 pages of anonymous memory mapped at Iova with READ|WRITE.
    private static (Type1Sut Sut, EmulatedTestDevice Device, ulong Va) CreateSut(ulong type = 3, uint mapFlags = 3, params int[] groups) =>
        CreateSut(out _, type, mapFlags, groups);

    private static (Type1Sut Sut, EmulatedTestDevice Device, ulong Va) CreateSut(out Dictionary<int, int> groupFds, ulong type = 3, uint mapFlags = 3, params int[] groups)
    {
        var sut = Type1Sut.Create();
        var device = sut.RegisterEmulated();
        var fds = groupFds = sut.Setup(type, groups.Length == 0 ? [1, 3] : groups);
        sut.OpenDevice(fds[3], Type1Sut.EmulatedName);
        var va = sut.MapAnonymous(16 * Page);
        Assert.Equal(16 * (long)Page, sut.Process.WriteMemory(va, new byte[16 * Page]));
        Assert.Equal(0, sut.Map(va, Iova, 16 * Page, mapFlags));
        return (sut, device, va);
    }

    // ------------------------------------------------------------ pin and unpin

    [Fact]
    public void PinPages_SamePageTwice_OnePagePinWithTwoReferences()
    {
        var (sut, device, _) = CreateSut();
        var pfn = sut.PfnAt(3, Iova);
        Assert.Equal(1, sut.PinCount(pfn));
        var lockedVm = sut.Process.Mm.LockedVm;

        Assert.Equal(pfn, device.PinOne(Iova));
        Assert.Equal(pfn, device.PinOne(Iova));

        Assert.Equal(2, sut.PinCount(pfn));
        Assert.Equal(lockedVm, sut.Process.Mm.LockedVm);
        device.UnpinOne(Iova);
        Assert.Equal(2, sut.PinCount(pfn));
        device.UnpinOne(Iova);
        Assert.Equal(1, sut.PinCount(pfn));
        Assert.Equal(lockedVm, sut.Process.Mm.LockedVm);
        Assert.Equal((0L, 16 * Page), sut.Unmap(Iova, 16 * Page));
        Assert.Empty(device.DmaUnmaps);
        sut.AssertClean();
    }

    [Fact]
    public void PinPages_SeveralPages_ReturnsEachPagesPfn()
    {
        var (sut, device, _) = CreateSut();
        var pfns = new Pfn[4];

        var pinned = device.Pin(Iova + Page, 4, IommuProt.Read, pfns);

        Assert.Equal(4, pinned.Value);
        for (var i = 0; i < 4; i++)
        {
            var expected = sut.PfnAt(3, Iova + Page + ((ulong)i * Page));
            Assert.Equal(expected, pfns[i]);
            Assert.Equal(2, sut.PinCount(expected));
        }

        device.CloseDevice();
        Assert.Equal(1, sut.PinCount(pfns[0]));
        Assert.Equal((0L, 16 * Page), sut.Unmap(Iova, 16 * Page));
        sut.AssertClean();
    }

    public static TheoryData<string, ulong, int, uint, IommuProt, Errno> PinErrnoCases => new()
    {
        { "outside every mapping", 64 * Page, 1, 3, Rw, Errno.EINVAL },
        { "last page past the mapping", 15 * Page, 2, 3, Rw, Errno.EINVAL },
        { "write to a read-only mapping", 0, 1, 1, Rw, Errno.EPERM },
        { "no pages", 0, 0, 3, Rw, Errno.EINVAL },
        { "more than VFIO_PIN_PAGES_MAX_ENTRIES", 0, 513, 3, Rw, Errno.E2BIG },
    };

    [Theory]
    [MemberData(nameof(PinErrnoCases))]
    public void PinPages_InvalidRequest_ReturnsErrnoAndKeepsNoPin(string why, ulong offset, int npage, uint mapFlags, IommuProt prot, Errno expected)
    {
        var (sut, device, _) = CreateSut(mapFlags: mapFlags);
        var last = sut.PfnAt(3, Iova + (15 * Page));

        var pinned = device.Pin(Iova + offset, npage, prot, new Pfn[Math.Max(npage, 1)]);

        Assert.True(!pinned.IsOk && pinned.Error == expected, $"{why}: {pinned}");
        Assert.Equal(0, device.PinnedPages);
        Assert.Equal(1, sut.PinCount(last));
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        Assert.Empty(device.DmaUnmaps);
        sut.AssertClean();
    }

    [Fact]
    public void PinPages_V1Container_ReturnsEacces()
    {
        var (sut, device, _) = CreateSut(type: 1);

        Assert.Equal(Errno.EACCES, device.Pin(Iova, 1, Rw, new Pfn[1]).Error);
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        sut.AssertClean();
    }

    [Fact]
    public void PinPages_NoEmulatedDeviceRegistered_ReturnsEinval()
    {
        var sut = Type1Sut.Create();
        sut.Setup();
        var va = sut.MapAnonymous(Page);
        Assert.Equal(0, sut.Map(va, Iova, Page));
        Assert.True(sut.Machine.Vfio.TryGetIommuFor(sut.Nic, out var iommu));
        var access = Assert.IsAssignableFrom<IVfioIommuEmulatedAccess>(iommu);

        Assert.Equal(Errno.EINVAL, access.PinPages(sut.Nic, new Iova(Iova), 1, Rw, new Pfn[1]).Error);
        Assert.Equal(0, sut.Unmap(Iova, Page).Result);
        sut.AssertClean();
    }

    [Fact]
    public void EmulatedAccess_VaddrInvalidated_PinAndDmaRwReturnEbusy()
    {
        var (sut, device, va) = CreateSut();
        Assert.Equal((0L, 16 * Page), sut.Unmap(Iova, 16 * Page, flags: 4));

        Assert.Equal(Errno.EBUSY, device.Pin(Iova, 1, Rw, new Pfn[1]).Error);
        Assert.Equal(Errno.EBUSY, device.Access.DmaRw(device, new Iova(Iova), new byte[8], write: false).Error);

        Assert.Equal(0, sut.Map(va, Iova, 16 * Page, flags: 4));
        Assert.Equal(sut.PfnAt(3, Iova), device.PinOne(Iova));
        device.UnpinOne(Iova);
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        sut.AssertClean();
    }

    [Fact]
    public void PinPages_PeerToPeerBarMapping_ReturnsEinvalAsMmioHasNoStructPage()
    {
        var (sut, device, _) = CreateSut(out var fds, groups: [1, 2, 3]);
        var gpuFd = sut.OpenDevice(fds[2], Type1Sut.GpuName);
        var bar = sut.Process.Mmap(0, MiB, Prot.Read | Prot.Write, MapFlags.Shared, gpuFd, TestVfioDevice.RegionOffset(0));
        Assert.True(bar > 0, $"mmap BAR: {bar}");
        Assert.Equal(0, sut.Map((ulong)bar, 4 * Iova, MiB));

        Assert.Equal(Errno.EINVAL, device.Pin(4 * Iova, 1, Rw, new Pfn[1]).Error);
        Assert.Equal(0, sut.Unmap(4 * Iova, MiB).Result);
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        sut.AssertClean();
    }

    [Fact]
    public void UnpinPages_PageNotPinned_ChangesNothing()
    {
        var (sut, device, _) = CreateSut();
        var pfn = sut.PfnAt(3, Iova);
        device.PinOne(Iova);

        // vfio_unpin_pages() is void since Linux 6.0: a page this container does not hold for an
        // emulated device, or an IOVA outside every mapping, is no error.
        device.Access.UnpinPages(device, new Iova(Iova + Page), 1);
        device.Access.UnpinPages(device, new Iova(64 * Iova), 1);

        Assert.Equal(2, sut.PinCount(pfn));
        Assert.Equal(1, sut.PinCount(sut.PfnAt(3, Iova + Page)));
        device.UnpinOne(Iova);
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        sut.AssertClean();
    }

    [Fact]
    public void DeviceClose_UnregistersFromTheBackend()
    {
        var (sut, device, _) = CreateSut();
        var access = device.Access;
        device.PinOne(Iova);

        device.CloseDevice();

        Assert.False(device.IsRegisteredWithBackend);
        Assert.Equal(Errno.EINVAL, access.PinPages(device, new Iova(Iova), 1, Rw, new Pfn[1]).Error);
        Assert.Equal(1, sut.PinCount(sut.PfnAt(3, Iova)));
        Assert.Equal((0L, 16 * Page), sut.Unmap(Iova, 16 * Page));
        Assert.Empty(device.DmaUnmaps);
        sut.AssertClean();
    }

    // ------------------------------------------------------------ dma_rw

    [Fact]
    public void DmaRw_ReadAndWrite_ReachTheProcessPagesAcrossMappings()
    {
        var (sut, device, va) = CreateSut();
        var va2 = sut.MapAnonymous(2 * Page);
        Assert.Equal(0, sut.Map(va2, Iova + (16 * Page), 2 * Page));
        sut.Process.WriteMemory(va + (16 * Page) - 3, "abc"u8);
        sut.Process.WriteMemory(va2, "def"u8);

        var read = new byte[6];
        Assert.True(device.Access.DmaRw(device, new Iova(Iova + (16 * Page) - 3), read, write: false).IsOk);
        Assert.Equal("abcdef"u8.ToArray(), read);

        Assert.True(device.Access.DmaRw(device, new Iova(Iova + (16 * Page) - 2), "XYZW"u8.ToArray(), write: true).IsOk);
        var cpu = new byte[6];
        sut.Process.ReadMemory(va + (16 * Page) - 3, cpu.AsSpan(0, 3));
        sut.Process.ReadMemory(va2, cpu.AsSpan(3));
        Assert.Equal("aXYZWf"u8.ToArray(), cpu);
        Assert.Equal(0, device.PinnedPages);
        Assert.Equal((0L, 18 * Page), sut.Unmap(0, 0, flags: 2));
        sut.AssertClean();
    }

    public static TheoryData<string, uint, ulong, bool, Errno> DmaRwErrnoCases => new()
    {
        { "write to a read-only mapping", 1, 0, true, Errno.EPERM },
        { "read of a write-only mapping", 2, 0, false, Errno.EPERM },
        { "write to a write-only mapping (READ is always needed)", 2, 0, true, Errno.EPERM },
        { "outside every mapping", 3, 16 * Page, false, Errno.EINVAL },
    };

    [Theory]
    [MemberData(nameof(DmaRwErrnoCases))]
    public void DmaRw_NotAllowed_ReturnsErrno(string why, uint mapFlags, ulong offset, bool write, Errno expected)
    {
        var (sut, device, _) = CreateSut(mapFlags: mapFlags);

        var result = device.Access.DmaRw(device, new Iova(Iova + offset), new byte[8], write);

        Assert.True(!result.IsOk && result.Error == expected, $"{why}: {result}");
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        sut.AssertClean();
    }

    // ------------------------------------------------------------ unmap with external pins

    [Fact]
    public void UnmapDma_RangeWithExternalPins_DeviceUnpinsAndUnmapSucceeds()
    {
        var (sut, device, _) = CreateSut();
        var pfn = device.PinOne(Iova + Page);
        device.PinOne(Iova + (2 * Page));
        Assert.Equal(2, sut.PinCount(pfn));

        var (r, size) = sut.Unmap(Iova, 16 * Page);

        Assert.Equal((0L, 16 * Page), (r, size));
        Assert.Equal([(new Iova(Iova), 16 * Page)], device.DmaUnmaps);
        Assert.Equal(0, device.PinnedPages);
        Assert.Equal(0, sut.PinCount(pfn));
        Assert.Equal(0, sut.Domain(3).LiveIoptes);
        Assert.Equal(0, sut.Process.Mm.LockedVm);
        sut.AssertClean();
    }

    [Fact]
    public void UnmapDma_UnmapAllWithPinsInTwoMappings_TellsTheDeviceAboutEach()
    {
        var (sut, device, _) = CreateSut();
        var va2 = sut.MapAnonymous(4 * Page);
        Assert.Equal(0, sut.Map(va2, 2 * Iova, 4 * Page));
        device.PinOne(Iova);
        device.PinOne(2 * Iova);

        Assert.Equal((0L, 20 * Page), sut.Unmap(0, 0, flags: 2));

        Assert.Equal([(new Iova(Iova), 16 * Page), (new Iova(2 * Iova), 4 * Page)], device.DmaUnmaps);
        Assert.Equal(0, device.PinnedPages);
        sut.AssertClean();
    }

    [Fact]
    public void UnmapDma_DeviceKeepsItsPins_KernelBugAfterTenRetries()
    {
        var (sut, device, _) = CreateSut();
        var pfn = device.PinOne(Iova);
        device.IgnoreDmaUnmap = true;
        var ioptes = sut.Domain(3).LiveIoptes;

        // vfio_dma_do_unmap(): BUG_ON(++retries > 10) — one notification, ten retries, then the
        // kernel oopses; the caller sees -EIO and the mapping is still there.
        var (r, _) = sut.Unmap(Iova, 16 * Page);

        Assert.Equal(-(long)Errno.EIO, r);
        Assert.Equal(11, device.DmaUnmaps.Count);
        var oops = Assert.Single(sut.Machine.Oopses);
        Assert.Contains("kernel BUG at vfio_dma_do_unmap", oops, StringComparison.Ordinal);
        Assert.Equal(ioptes, sut.Domain(3).LiveIoptes);
        Assert.Equal(2, sut.PinCount(pfn));

        device.IgnoreDmaUnmap = false;
        Assert.Equal((0L, 16 * Page), sut.Unmap(Iova, 16 * Page));
        Assert.Equal(0, sut.PinCount(pfn));
        sut.AssertClean(expectedOopses: 1);
    }

    [Fact]
    public void DeviceRelease_PeerToPeerMappingWithExternalPins_DeviceUnpinsBeforeTheMappingGoes()
    {
        // One vfio_dma over anonymous memory followed by the GPU's BAR0: it holds the GPU (strict
        // mode), and the emulated device pins one of its RAM pages.
        var (sut, device, _) = CreateSut(out var fds, groups: [1, 2, 3]);
        var gpuFd = sut.OpenDevice(fds[2], Type1Sut.GpuName);
        const ulong va = 0x7e00_0000_0000;
        Assert.Equal((long)va, sut.Process.Mmap(va, MiB, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Fixed));
        Assert.Equal((long)(va + MiB), sut.Process.Mmap(va + MiB, MiB, Prot.Read | Prot.Write, MapFlags.Shared | MapFlags.Fixed, gpuFd, TestVfioDevice.RegionOffset(0)));
        Assert.Equal(0, sut.Map(va, 4 * Iova, 2 * MiB));
        Assert.Equal(1, sut.Gpu.NotifierCount);
        var pfn = device.PinOne(4 * Iova + Page);
        Assert.Equal(2, sut.PinCount(pfn));

        Assert.Equal(0, sut.Process.Close(gpuFd));
        Assert.Equal(0, sut.Process.Munmap(va + MiB, MiB));

        Assert.Equal([(new Iova(4 * Iova), 2 * MiB)], device.DmaUnmaps);
        Assert.Equal(0, device.PinnedPages);
        Assert.Equal(0, sut.PinCount(pfn));
        Assert.Equal(0, sut.Gpu.NotifierCount);
        Assert.Equal(-(long)Errno.EFAULT, sut.Machine.Dma(Type1Sut.NicName).Write(4 * Iova + MiB, "late"u8));
        Assert.Empty(sut.Machine.Sanitizer.Reports);
        Assert.Equal((0L, 0UL), sut.Unmap(4 * Iova, 2 * MiB));
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        sut.AssertClean();
    }

    // ------------------------------------------------------------ dirty tracking scope

    [Fact]
    public void DirtyPages_EveryGroupPinsItsPages_ReportsOnlyPinnedAndWrittenPages()
    {
        var (sut, device, _) = CreateSut(groups: [3]);
        var bitmapVa = sut.MapAnonymous(Page);
        Assert.Equal(0, DirtyPages(sut, 1));
        Assert.Equal(0xffffUL, GetBitmap(sut, bitmapVa));   // group 3 has not pinned yet: it may dirty anything

        device.PinOne(Iova + (2 * Page));
        Assert.Equal(1UL << 2, GetBitmap(sut, bitmapVa));
        Assert.True(device.Access.DmaRw(device, new Iova(Iova + (5 * Page) + 10), new byte[Page], write: true).IsOk);
        Assert.Equal((1UL << 2) | (1UL << 5) | (1UL << 6), GetBitmap(sut, bitmapVa));
        Assert.Equal(1UL << 2, GetBitmap(sut, bitmapVa));
        device.UnpinOne(Iova + (2 * Page));
        Assert.Equal(1UL << 2, GetBitmap(sut, bitmapVa));
        Assert.Equal(0UL, GetBitmap(sut, bitmapVa));

        Assert.Equal(0, DirtyPages(sut, 2));
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        sut.AssertClean();
    }

    [Fact]
    public void DirtyPages_GroupOutsidePinnedScope_ReportsEveryMappedPage()
    {
        var (sut, device, _) = CreateSut();
        var bitmapVa = sut.MapAnonymous(Page);
        Assert.Equal(0, DirtyPages(sut, 1));
        device.PinOne(Iova);

        // Group 1 (the NIC) DMAs through the IOMMU and never pinned: it may have written anywhere.
        Assert.Equal(0xffffUL, GetBitmap(sut, bitmapVa));
        device.UnpinOne(Iova);
        Assert.Equal(0, sut.Unmap(Iova, 16 * Page).Result);
        sut.AssertClean();
    }

    private static long DirtyPages(Type1Sut sut, uint flags)
    {
        var arg = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(arg, 8);
        BinaryPrimitives.WriteUInt32LittleEndian(arg.AsSpan(4), flags);
        return sut.Process.Ioctl(sut.Container, Type1Sut.DirtyPages, arg);
    }

    // VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP over the 16 mapped pages; the bitmap's first u64.
    private static ulong GetBitmap(Type1Sut sut, ulong bitmapVa)
    {
        sut.Process.WriteMemory(bitmapVa, new byte[8]);
        var arg = new byte[48];
        BinaryPrimitives.WriteUInt32LittleEndian(arg, 48);
        BinaryPrimitives.WriteUInt32LittleEndian(arg.AsSpan(4), 4);
        BinaryPrimitives.WriteUInt64LittleEndian(arg.AsSpan(8), Iova);
        BinaryPrimitives.WriteUInt64LittleEndian(arg.AsSpan(16), 16 * Page);
        BinaryPrimitives.WriteUInt64LittleEndian(arg.AsSpan(24), Page);
        BinaryPrimitives.WriteUInt64LittleEndian(arg.AsSpan(32), 8);
        BinaryPrimitives.WriteUInt64LittleEndian(arg.AsSpan(40), bitmapVa);
        Assert.Equal(0, sut.Process.Ioctl(sut.Container, Type1Sut.DirtyPages, arg));
        var bits = new byte[8];
        sut.Process.ReadMemory(bitmapVa, bits);
        return BinaryPrimitives.ReadUInt64LittleEndian(bits);
    }
}
