using KernelModel.Kernel;
using KernelModel.Pci.Irq;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Tests.Pci;

/// <summary>SET_IRQS: vfio_set_irqs_validate_and_prepare()'s checks, the index × action dispatch, and eventfd wiring.</summary>
public sealed class VfioPciIrqTests : PciTestBase
{
    private const uint None = VFIO_IRQ_SET_DATA_NONE;
    private const uint Bool = VFIO_IRQ_SET_DATA_BOOL;
    private const uint Efd = VFIO_IRQ_SET_DATA_EVENTFD;
    private const uint Mask = VFIO_IRQ_SET_ACTION_MASK;
    private const uint Unmask = VFIO_IRQ_SET_ACTION_UNMASK;
    private const uint Trigger = VFIO_IRQ_SET_ACTION_TRIGGER;
    private const uint Intx = VFIO_PCI_INTX_IRQ_INDEX;
    private const uint Msi = VFIO_PCI_MSI_IRQ_INDEX;
    private const uint Msix = VFIO_PCI_MSIX_IRQ_INDEX;
    private const uint Err = VFIO_PCI_ERR_IRQ_INDEX;
    private const uint Req = VFIO_PCI_REQ_IRQ_INDEX;

    /// <summary>(case, flags, index, start, count, data bytes, argsz (null: the buffer), errno) on the NIC: INTx 1, MSI 4, MSI-X 64, ERR 1, REQ 1.</summary>
    public static TheoryData<string, uint, uint, uint, uint, int, uint?, Errno> InvalidSetIrqs => new()
    {
        { "argsz below the header", None | Trigger, Msix, 0, 1, 0, 19, Errno.EINVAL },
        { "index beyond the last type", None | Trigger, VFIO_PCI_NUM_IRQS, 0, 1, 0, null, Errno.EINVAL },
        { "start + count wraps", None | Trigger, Msix, 1, uint.MaxValue - 1, 0, null, Errno.EINVAL },
        { "unknown flag bit", None | Trigger | (1u << 6), Msix, 0, 1, 0, null, Errno.EINVAL },
        { "start at the count", None | Trigger, Msix, 64, 0, 0, null, Errno.EINVAL },
        { "start + count beyond the count", None | Trigger, Msix, 60, 5, 0, null, Errno.EINVAL },
        { "no data type", Trigger, Msix, 0, 1, 0, null, Errno.EINVAL },
        { "two data types", None | Bool | Trigger, Msix, 0, 1, 1, null, Errno.EINVAL },
        { "three data types", None | Bool | Efd | Trigger, Msix, 0, 1, 4, null, Errno.EINVAL },
        { "bools argsz cannot hold", Bool | Trigger, Msix, 0, 2, 2, 21, Errno.EINVAL },
        { "eventfds argsz cannot hold", Efd | Trigger, Msix, 0, 2, 8, 27, Errno.EINVAL },
        { "argsz claims data the buffer lacks", Efd | Trigger, Msix, 0, 2, 4, 28, Errno.EFAULT },
        { "MSI-X mask", None | Mask, Msix, 0, 1, 0, null, Errno.ENOTTY },
        { "MSI-X unmask", None | Unmask, Msix, 0, 1, 0, null, Errno.ENOTTY },
        { "MSI mask", None | Mask, Msi, 0, 1, 0, null, Errno.ENOTTY },
        { "two actions", None | Mask | Trigger, Msix, 0, 1, 0, null, Errno.ENOTTY },
        { "no action", None, Msix, 0, 1, 0, null, Errno.ENOTTY },
        { "ERR mask", None | Mask, Err, 0, 1, 0, null, Errno.ENOTTY },
        { "REQ unmask", None | Unmask, Req, 0, 1, 0, null, Errno.ENOTTY },
        { "INTx mask while INTx is off", None | Mask, Intx, 0, 1, 0, null, Errno.EINVAL },
        { "INTx unmask while INTx is off", None | Unmask, Intx, 0, 1, 0, null, Errno.EINVAL },
        { "INTx loopback while INTx is off", None | Trigger, Intx, 0, 1, 0, null, Errno.EINVAL },
        { "MSI-X loopback while MSI-X is off", None | Trigger, Msix, 0, 1, 0, null, Errno.EINVAL },
        { "MSI-X disable while MSI-X is off", None | Trigger, Msix, 0, 0, 0, null, Errno.EINVAL },
        { "REQ bool with count 0", Bool | Trigger, Req, 0, 0, 0, null, Errno.EINVAL },
        { "REQ eventfd with count 0", Efd | Trigger, Req, 0, 0, 0, null, Errno.EINVAL },
    };

    [Theory]
    [MemberData(nameof(InvalidSetIrqs))]
    public void SetIrqs_InvalidRequest_ReturnsErrno(string what, uint flags, uint index, uint start, uint count, int dataBytes, uint? argsz, Errno errno)
    {
        var sut = CreateSut(devices: PciSut.Nic);

        var r = sut.Process.SetIrqs(sut.Fd(PciSut.Nic), flags, index, start, count, new byte[dataBytes], argsz);

        Assert.True(-(long)errno == r, $"{what}: {r}");
        Assert.Equal((uint)VFIO_PCI_NUM_IRQS, sut.Vfio(PciSut.Nic).IrqType);
    }

    [Fact]
    public void SetIrqs_HeaderShorterThanMinsz_ReturnsEfault()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EFAULT, sut.Process.Ioctl(sut.Fd(PciSut.Nic), VFIO_DEVICE_SET_IRQS, new byte[19]));
    }

    [Fact]
    public void SetIrqs_IndexWithNoVectors_ReturnsEinval()
    {
        var sut = CreateSut(devices: PciSut.Gpu);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Gpu), Msix, 0, sut.Process.EventFd(0)));
    }

    [Fact]
    public void SetIrqs_MsixEventfds_RaisedVectorSignalsItsEventfdOnly()
    {
        var (sut, efds) = CreateWithEventfds(3);
        var fn = sut.Function(PciSut.Nic);

        Assert.Equal(0, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Nic), Msix, 0, efds));
        var result = fn.RaiseInterrupt(PciIrqType.Msix, 1);

        Assert.Equal(PciInterruptResult.Delivered, result);
        Assert.Equal([0UL, 1UL, 0UL], efds.Select(sut.Process.ReadEventFd));
        Assert.Equal(Msix, sut.Vfio(PciSut.Nic).IrqType);
        Assert.Equal(3, fn.AllocatedVectors(PciIrqType.Msix));
    }

    [Fact]
    public void SetIrqs_EventfdMinusOne_DeassignsOneVector()
    {
        var (sut, efds) = CreateWithEventfds(2);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Msix, 0, efds));

        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Msix, 1, -1));
        sut.Function(PciSut.Nic).RaiseInterrupt(PciIrqType.Msix, 0);
        var orphan = sut.Function(PciSut.Nic).RaiseInterrupt(PciIrqType.Msix, 1);

        Assert.Equal(PciInterruptResult.Spurious, orphan);
        Assert.Equal([1UL, 0UL], efds.Select(sut.Process.ReadEventFd));
        Assert.Null(sut.Vfio(PciSut.Nic).Trigger(Msix, 1));
    }

    [Fact]
    public void SetIrqs_CountZeroDataNoneTrigger_DisablesMsix()
    {
        var (sut, efds) = CreateWithEventfds(2);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Msix, 0, efds));

        Assert.Equal(0, sut.Process.SetIrqs(fd, None | Trigger, Msix, 0, 0));

        Assert.Equal((uint)VFIO_PCI_NUM_IRQS, sut.Vfio(PciSut.Nic).IrqType);
        Assert.Equal(PciInterruptResult.Disabled, sut.Function(PciSut.Nic).RaiseInterrupt(PciIrqType.Msix, 0));
        Assert.Equal(0, sut.Function(PciSut.Nic).AllocatedVectors(PciIrqType.Msix));
    }

    [Fact]
    public void SetIrqs_DataNoneTrigger_LoopsBackToEveryVector()
    {
        var (sut, efds) = CreateWithEventfds(3);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Msix, 0, efds));

        Assert.Equal(0, sut.Process.SetIrqs(fd, None | Trigger, Msix, 1, 2));

        Assert.Equal([0UL, 1UL, 1UL], efds.Select(sut.Process.ReadEventFd));
    }

    [Fact]
    public void SetIrqs_DataBoolTrigger_LoopsBackWhereTrue()
    {
        var (sut, efds) = CreateWithEventfds(3);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Msix, 0, efds));

        Assert.Equal(0, sut.Process.SetIrqs(fd, Bool | Trigger, Msix, 0, 3, new byte[] { 1, 0, 1 }));

        Assert.Equal([1UL, 0UL, 1UL], efds.Select(sut.Process.ReadEventFd));
    }

    [Fact]
    public void SetIrqs_MsiWhileMsixEnabled_ReturnsEinval()
    {
        var (sut, efds) = CreateWithEventfds(1);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Msix, 0, efds));

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.SetIrqEventfds(fd, Msi, 0, efds));
        Assert.Equal(-(long)Errno.EINVAL, sut.Process.SetIrqEventfds(fd, Intx, 0, efds));
    }

    [Fact]
    public void SetIrqs_MsiVectors_MultiMessageDeliversByVector()
    {
        var (sut, efds) = CreateWithEventfds(4);

        Assert.Equal(0, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Nic), Msi, 0, efds));
        var result = sut.Function(PciSut.Nic).RaiseInterrupt(PciIrqType.Msi, 2);

        Assert.Equal(PciInterruptResult.Delivered, result);
        Assert.Equal([0UL, 0UL, 1UL, 0UL], efds.Select(sut.Process.ReadEventFd));
    }

    [Fact]
    public void SetIrqs_NotAnEventfd_ReturnsEinvalAndLeavesMsixOff()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EINVAL, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Nic), Msix, 0, sut.GroupFd(1)));
        Assert.Equal((uint)VFIO_PCI_NUM_IRQS, sut.Vfio(PciSut.Nic).IrqType);
    }

    [Fact]
    public void SetIrqs_BadFd_ReturnsEbadf()
    {
        var sut = CreateSut(devices: PciSut.Nic);

        Assert.Equal(-(long)Errno.EBADF, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Nic), Msix, 0, 999));
    }

    [Fact]
    public void SetIrqs_OneBadFdInABlock_UnwindsTheWholeBlock()
    {
        var (sut, efds) = CreateWithEventfds(2);

        Assert.Equal(-(long)Errno.EBADF, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Nic), Msix, 0, efds[0], efds[1], 999));

        Assert.Equal((uint)VFIO_PCI_NUM_IRQS, sut.Vfio(PciSut.Nic).IrqType);
        Assert.Equal(0, sut.Function(PciSut.Nic).AllocatedVectors(PciIrqType.Msix));
    }

    [Fact]
    public void Intx_Raised_SignalsOnceAndStaysMaskedUntilUnmask()
    {
        var (sut, efds) = CreateWithEventfds(1);
        var fd = sut.Fd(PciSut.Nic);
        var fn = sut.Function(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Intx, 0, efds));

        Assert.Equal(PciInterruptResult.Delivered, fn.RaiseInterrupt(PciIrqType.Intx));
        Assert.Equal(PciInterruptResult.Pending, fn.RaiseInterrupt(PciIrqType.Intx));
        fn.DeassertIntx();
        Assert.Equal(0, sut.Process.SetIrqs(fd, None | Unmask, Intx, 0, 1));
        Assert.Equal(PciInterruptResult.Delivered, fn.RaiseInterrupt(PciIrqType.Intx));

        Assert.Equal(2UL, sut.Process.ReadEventFd(efds[0]));
    }

    [Fact]
    public void Intx_UnmaskWhileStillAsserted_ResendsAndStaysMasked()
    {
        var (sut, efds) = CreateWithEventfds(1);
        var fd = sut.Fd(PciSut.Nic);
        var fn = sut.Function(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Intx, 0, efds));
        fn.RaiseInterrupt(PciIrqType.Intx);

        Assert.Equal(0, sut.Process.SetIrqs(fd, Bool | Unmask, Intx, 0, 1, new byte[] { 1 }));

        Assert.Equal(2UL, sut.Process.ReadEventFd(efds[0]));
        Assert.Equal(PciInterruptResult.Pending, fn.RaiseInterrupt(PciIrqType.Intx));
    }

    [Fact]
    public void Intx_MaskedByUser_IsNotDelivered()
    {
        var (sut, efds) = CreateWithEventfds(1);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Intx, 0, efds));

        Assert.Equal(0, sut.Process.SetIrqs(fd, None | Mask, Intx, 0, 1));

        Assert.Equal(PciInterruptResult.Pending, sut.Function(PciSut.Nic).RaiseInterrupt(PciIrqType.Intx));
        Assert.Equal(0UL, sut.Process.ReadEventFd(efds[0]));
    }

    [Fact]
    public void Intx_UnmaskByEventfd_IsNotModelled()
    {
        var (sut, efds) = CreateWithEventfds(1);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Intx, 0, efds));

        Assert.Equal(-(long)Errno.ENOTTY, sut.Process.SetIrqs(fd, Efd | Unmask, Intx, 0, 1, BitConverter.GetBytes(efds[0])));
        Assert.Equal(0, sut.Process.SetIrqs(fd, Efd | Unmask, Intx, 0, 1, BitConverter.GetBytes(-1)));
    }

    [Fact]
    public void Intx_CountZeroDataNone_Disables()
    {
        var (sut, efds) = CreateWithEventfds(1);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Intx, 0, efds));

        Assert.Equal(0, sut.Process.SetIrqs(fd, None | Trigger, Intx, 0, 0));

        Assert.Equal((uint)VFIO_PCI_NUM_IRQS, sut.Vfio(PciSut.Nic).IrqType);
        sut.Function(PciSut.Nic).RaiseInterrupt(PciIrqType.Intx);
        Assert.Equal(0UL, sut.Process.ReadEventFd(efds[0]));
    }

    [Fact]
    public void Err_ReportedError_SignalsTheErrEventfd()
    {
        var (sut, efds) = CreateWithEventfds(1);
        Assert.Equal(0, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Nic), Err, 0, efds));

        sut.Function(PciSut.Nic).ReportError();

        Assert.Equal(1UL, sut.Process.ReadEventFd(efds[0]));
    }

    [Fact]
    public void Err_DataNoneCountZero_RemovesTheTrigger()
    {
        var (sut, efds) = CreateWithEventfds(1);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Err, 0, efds));

        Assert.Equal(0, sut.Process.SetIrqs(fd, None | Trigger, Err, 0, 0));
        sut.Function(PciSut.Nic).ReportError();

        Assert.Equal(0UL, sut.Process.ReadEventFd(efds[0]));
        Assert.Null(sut.Vfio(PciSut.Nic).Trigger(Err, 0));
    }

    [Fact]
    public void Req_UnbindWhileOpen_RelaysTheRequestToTheEventfd()
    {
        var (sut, efds) = CreateWithEventfds(1);
        Assert.Equal(0, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Nic), Req, 0, efds));

        Assert.True(sut.Machine.Sysfs.Unbind(PciSut.Nic).IsOk);

        Assert.Equal(1UL, sut.Process.ReadEventFd(efds[0]));
        Assert.Equal(0, sut.Process.Close(sut.Fd(PciSut.Nic)));
    }

    [Fact]
    public void Msix_AfterFunctionReset_VectorsStillDeliver()
    {
        var (sut, efds) = CreateWithEventfds(2);
        var fd = sut.Fd(PciSut.Nic);
        Assert.Equal(0, sut.Process.SetIrqEventfds(fd, Msix, 0, efds));

        Assert.Equal(0, sut.Process.Ioctl(fd, VFIO_DEVICE_RESET, 0UL));

        Assert.Equal(PciInterruptResult.Delivered, sut.Function(PciSut.Nic).RaiseInterrupt(PciIrqType.Msix, 1));
        Assert.Equal(1UL, sut.Process.ReadEventFd(efds[1]));
    }

    [Fact]
    public void Close_WithMsixEnabled_DisablesEveryVector()
    {
        var (sut, efds) = CreateWithEventfds(2);
        Assert.Equal(0, sut.Process.SetIrqEventfds(sut.Fd(PciSut.Nic), Msix, 0, efds));

        Assert.Equal(0, sut.Process.Close(sut.Fd(PciSut.Nic)));

        Assert.Equal(PciInterruptResult.Disabled, sut.Function(PciSut.Nic).RaiseInterrupt(PciIrqType.Msix, 0));
        Assert.Equal(0, sut.Function(PciSut.Nic).AllocatedVectors(PciIrqType.Msix));
    }

    private (PciSut Sut, int[] Eventfds) CreateWithEventfds(int n)
    {
        var sut = CreateSut(devices: PciSut.Nic);
        var efds = Enumerable.Range(0, n).Select(_ => sut.Process.EventFd(0)).ToArray();
        Assert.All(efds, fd => Assert.True(fd >= 0));
        return (sut, efds);
    }
}
