using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Pci.Irq;
using KernelModel.Pci.Msix;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Tests.Pci;

/// <summary>
/// The seed "vfio-pci: Allow mapping MSIX BAR": whether the page holding the MSI-X table may be
/// mmapped. Default (Linux ≥ 4.16): yes, the BAR says MSIX_MAPPABLE. Older policy: the page is cut
/// out; on 64 KiB pages that takes registers sharing it, which are then reached only by pread/pwrite.
/// </summary>
public sealed class VfioPciMsixPageTests : PciTestBase
{
    public static TheoryData<bool, ulong, ulong, bool> X86NicMmaps => new()
    {
        { true, 0, 0x10000, true },
        { true, 0x3000, 0x1000, true },
        { false, 0, 0x10000, false },
        { false, 0x3000, 0x1000, false },
        { false, 0x2000, 0x2000, false },
        // The sparse areas the capability announces are mmappable.
        { false, 0, 0x3000, true },
        { false, 0x4000, 0xc000, true },
    };

    [Theory]
    [MemberData(nameof(X86NicMmaps))]
    public void Mmap_X86NicMsixBar_AllowedUnlessItOverlapsTheTableUnderTheOldPolicy(bool mappable, ulong offset, ulong length, bool allowed)
    {
        var sut = CreateSut(settings: new MachineSettings { MsixMappable = mappable }, devices: PciSut.Nic);

        var va = sut.Process.MmapRegion(sut.Fd(PciSut.Nic), 0, offset, length);

        Assert.Equal(allowed, va > 0);
        if (!allowed)
        {
            Assert.Equal(-(long)Errno.EINVAL, va);
        }
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(false, false)]
    public void Mmap_Ppc64NicPageSharedWithTheTable_OnlyUnderTheDefault(bool mappable, bool allowed)
    {
        var sut = CreateSut(MachineSpec.Ppc64, new MachineSettings { MsixMappable = mappable }, PciSut.Ppc64Nic);

        var va = sut.Process.MmapRegion(sut.Fd(PciSut.Ppc64Nic), 0, 0x10000, 0x10000);

        Assert.Equal(allowed ? va : -(long)Errno.EINVAL, va);
        Assert.Equal(allowed, va > 0);
    }

    [Fact]
    public void Mmap_Ppc64NicFirstPage_AllowedUnderBothPolicies()
    {
        var sut = CreateSut(MachineSpec.Ppc64, OldMsixPolicy, PciSut.Ppc64Nic);

        Assert.True(sut.Process.MmapRegion(sut.Fd(PciSut.Ppc64Nic), 0, 0, 0x10000) > 0);
    }

    /// <summary>
    /// A driver rings the doorbell at 0x12000 (beside the table) 100 times: through an mmap under
    /// the default, through pwrite (the slow path) where the old policy leaves it no mmap.
    /// </summary>
    [Theory]
    [InlineData(true, 0L, 1L)]
    [InlineData(false, 100L, 0L)]
    public void Doorbell_BesideTheTableOn64KPages_FastUnderDefaultSlowPathUnderOldPolicy(bool mappable, long slowTrips, long faults)
    {
        var sut = CreateSut(MachineSpec.Ppc64, new MachineSettings { MsixMappable = mappable }, PciSut.Ppc64Nic);
        var p = sut.Process;
        var fd = sut.Fd(PciSut.Ppc64Nic);
        const ulong doorbell = 0x12000;

        var va = p.MmapRegion(fd, 0, 0x10000, 0x10000);
        for (uint i = 1; i <= 100; i++)
        {
            if (va > 0)
            {
                p.Write32((ulong)va + (doorbell - 0x10000), i);
            }
            else
            {
                Assert.Equal(4, p.WriteRegion(fd, 0, doorbell, BitConverter.GetBytes(i)));
            }
        }

        var back = new byte[4];
        sut.Function(PciSut.Ppc64Nic).Bars[0].Region!.Read(doorbell, back);
        Assert.Equal(100u, BinaryPrimitives.ReadUInt32LittleEndian(back));
        Assert.Equal(slowTrips, sut.Vfio(PciSut.Ppc64Nic).SlowPathAccesses);
        Assert.Equal(faults, sut.Vfio(PciSut.Ppc64Nic).Faults);
    }

    [Fact]
    public void Pread_TableOnPpc64UnderDefault_StillSkipsTheTable()
    {
        var sut = CreateSut(MachineSpec.Ppc64, devices: PciSut.Ppc64Nic);
        var buffer = new byte[16];

        Assert.Equal(16, sut.Process.ReadRegion(sut.Fd(PciSut.Ppc64Nic), 0, 0x1e000, buffer));

        Assert.All(buffer, b => Assert.Equal(0xff, b));
    }

    [Fact]
    public void MmapTable_UnderDefault_ShowsTheMessagesTheHostProgrammed()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var efd = p.EventFd(0);
        Assert.Equal(0, p.SetIrqEventfds(sut.Fd(PciSut.Nic), VFIO_PCI_MSIX_IRQ_INDEX, 0, efd));

        var va = sut.MapBar(PciSut.Nic, 0, 0x3000, 0x1000);

        Assert.Equal((uint)InterruptController.MsiAddress, p.Read32(va + (ulong)MsixEntryOffset.LowerAddress));
        Assert.Equal(0u, p.Read32(va + (ulong)MsixEntryOffset.VectorControl));
    }

    /// <summary>
    /// What the seed's discussion settled: the table is not a security boundary (the IOMMU and
    /// interrupt remapping are), only the user's foot is at stake. A user that scribbles over an
    /// entry through its mmap misroutes its own vector; SET_IRQS rewrites the host's message.
    /// </summary>
    [Fact]
    public void MmapTable_UserScribblesAnEntry_VectorGoesNowhereUntilSetIrqsRewritesIt()
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var p = sut.Process;
        var fd = sut.Fd(PciSut.Nic);
        var efd = p.EventFd(0);
        Assert.Equal(0, p.SetIrqEventfds(fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, efd));
        var va = sut.MapBar(PciSut.Nic, 0, 0x3000, 0x1000);
        var fn = sut.Function(PciSut.Nic);

        p.Write32(va + (ulong)MsixEntryOffset.Data, 0xdead);
        Assert.Equal(PciInterruptResult.Spurious, fn.RaiseInterrupt(PciIrqType.Msix, 0));
        p.Write32(va + (ulong)MsixEntryOffset.VectorControl, (uint)MsixVectorControl.Masked);
        Assert.Equal(PciInterruptResult.Pending, fn.RaiseInterrupt(PciIrqType.Msix, 0));
        Assert.True(fn.Msix!.IsPending(0));

        Assert.Equal(0, p.SetIrqEventfds(fd, VFIO_PCI_MSIX_IRQ_INDEX, 0, efd));

        Assert.Equal(PciInterruptResult.Delivered, fn.RaiseInterrupt(PciIrqType.Msix, 0));
        Assert.Equal(1UL, p.ReadEventFd(efd));
        Assert.Equal(1, fn.Interrupts.SpuriousInterrupts);
    }
}
