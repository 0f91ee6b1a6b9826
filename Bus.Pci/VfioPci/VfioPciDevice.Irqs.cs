using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Pci.Irq;
using KernelModel.Uapi;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Pci.VfioPci;

public sealed partial class VfioPciDevice
{
    private const uint IrqNone = VFIO_PCI_NUM_IRQS;
    private readonly Lock _irqLock = new();
    private uint _irqType = IrqNone;
    private IrqContext[] _ctx = [];
    private EventFdContext? _errTrigger;
    private EventFdContext? _reqTrigger;
    private bool _virqDisabled;

    /// <summary>The interrupt index in use (VFIO_PCI_INTX/MSI/MSIX_IRQ_INDEX), or VFIO_PCI_NUM_IRQS for none.</summary>
    public uint IrqType
    {
        get
        {
            lock (_igate)
            {
                return _irqType;
            }
        }
    }

    /// <summary>How many vectors of the current index have contexts (num_ctx).</summary>
    public int IrqContexts
    {
        get
        {
            lock (_igate)
            {
                return _ctx.Length;
            }
        }
    }

    /// <summary>The eventfd a vector signals, if one is wired (for diagnostics).</summary>
    public EventFdContext? Trigger(uint index, int vector)
    {
        lock (_igate)
        {
            return index switch
            {
                VFIO_PCI_ERR_IRQ_INDEX => _errTrigger,
                VFIO_PCI_REQ_IRQ_INDEX => _reqTrigger,
                _ when index == _irqType && vector >= 0 && vector < _ctx.Length => _ctx[vector].Trigger,
                _ => null,
            };
        }
    }

    private bool IsIntx => _irqType == VFIO_PCI_INTX_IRQ_INDEX;

    private bool IsIrqNone => _irqType == IrqNone;

    // ------------------------------------------------------------------ GET_IRQ_INFO

    // Like vfio_pci_ioctl_get_irq_info(): ERR exists only on PCI Express.
    private long GetIrqInfo(IoctlArg arg)
    {
        var minsz = UapiStruct.SizeOf<VfioIrqInfo>();
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser<VfioIrqInfo>(arg.Buffer, minsz, out var info))
        {
            return Fail(Errno.EFAULT);
        }

        if (info.Argsz < minsz || info.Index >= VFIO_PCI_NUM_IRQS || (info.Index == VFIO_PCI_ERR_IRQ_INDEX && !Function.IsPcie))
        {
            return Fail(Errno.EINVAL);
        }

        info.Flags = VFIO_IRQ_INFO_EVENTFD;
        info.Count = (uint)GetIrqCount(info.Index);
        info.Flags |= info.Index == VFIO_PCI_INTX_IRQ_INDEX
            ? (uint)(VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED)
            : VFIO_IRQ_INFO_NORESIZE;
        return UapiStruct.TryCopyToUser(arg.Buffer, info, minsz) ? 0 : Fail(Errno.EFAULT);
    }

    // Like vfio_pci_get_irq_count(), from the hardware's capabilities.
    private int GetIrqCount(uint index) => index switch
    {
        VFIO_PCI_INTX_IRQ_INDEX => Function.InterruptPin != 0 ? 1 : 0,
        VFIO_PCI_MSI_IRQ_INDEX => Function.MsiCap == 0
            ? 0
            : 1 << ((Function.ReadConfigWord(Function.MsiCap + (int)Config.PciMsiOffset.Flags) & (int)Config.PciMsiFlags.QMask) >> 1),
        VFIO_PCI_MSIX_IRQ_INDEX => Function.MsixCap == 0
            ? 0
            : (Function.ReadConfigWord(Function.MsixCap + (int)Config.PciMsixOffset.Flags) & (int)Config.PciMsixFlags.QSize) + 1,
        VFIO_PCI_ERR_IRQ_INDEX => Function.IsPcie ? 1 : 0,
        VFIO_PCI_REQ_IRQ_INDEX => 1,
        _ => 0,
    };

    // ------------------------------------------------------------------ SET_IRQS

    // Like vfio_pci_ioctl_set_irqs(): copy the header, validate it against the index's count,
    // copy the data it announces, then dispatch under igate.
    private long SetIrqsIoctl(IoctlArg arg)
    {
        var minsz = UapiStruct.SizeOf<VfioIrqSet>();
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser<VfioIrqSet>(arg.Buffer, minsz, out var hdr))
        {
            return Fail(Errno.EFAULT);
        }

        var max = GetIrqCount(hdr.Index);
        var valid = ValidateAndPrepare(hdr, max, VFIO_PCI_NUM_IRQS, out var dataSize);
        if (valid != 0)
        {
            return valid;
        }

        byte[] data = [];
        if (dataSize != 0)
        {
            if ((ulong)arg.Buffer.Length < (ulong)minsz + dataSize)
            {
                return Fail(Errno.EFAULT);
            }

            data = arg.Buffer.Slice(minsz, (int)dataSize).ToArray();
        }

        lock (_igate)
        {
            return SetIrqs(hdr.Flags, hdr.Index, hdr.Start, hdr.Count, data);
        }
    }

    /// <summary>
    /// vfio_set_irqs_validate_and_prepare(): argsz below the header, an index beyond
    /// <paramref name="maxIrqType"/>, a start + count that would wrap, or flag bits outside the data
    /// and action types → EINVAL; start or start + count beyond the index's <paramref name="numIrqs"/>
    /// → EINVAL; not exactly one data type → EINVAL; BOOL or EVENTFD data that argsz cannot hold →
    /// EINVAL. On success <paramref name="dataSize"/> is the data's size.
    /// </summary>
    internal static long ValidateAndPrepare(VfioIrqSet hdr, int numIrqs, int maxIrqType, out ulong dataSize)
    {
        var minsz = (uint)UapiStruct.SizeOf<VfioIrqSet>();
        dataSize = 0;
        if (hdr.Argsz < minsz || hdr.Index >= maxIrqType || hdr.Count >= uint.MaxValue - hdr.Start
            || (hdr.Flags & ~(uint)(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)) != 0)
        {
            return Fail(Errno.EINVAL);
        }

        if (hdr.Start >= (uint)numIrqs || hdr.Start + hdr.Count > (uint)numIrqs)
        {
            return Fail(Errno.EINVAL);
        }

        ulong size;
        switch (hdr.Flags & VFIO_IRQ_SET_DATA_TYPE_MASK)
        {
            case VFIO_IRQ_SET_DATA_NONE:
                size = 0;
                break;
            case VFIO_IRQ_SET_DATA_BOOL:
                size = sizeof(byte);
                break;
            case VFIO_IRQ_SET_DATA_EVENTFD:
                size = sizeof(int);
                break;
            default:
                return Fail(Errno.EINVAL);
        }

        if (size != 0)
        {
            if (hdr.Argsz - minsz < hdr.Count * size)
            {
                return Fail(Errno.EINVAL);
            }

            dataSize = hdr.Count * size;
        }

        return 0;
    }

    // Like vfio_pci_set_irqs_ioctl(): one handler per index and action; a combination without one
    // (MSI masking, ERR on conventional PCI, two actions at once) is ENOTTY. Callers hold igate.
    private long SetIrqs(uint flags, uint index, uint start, uint count, byte[] data)
    {
        Func<uint, uint, uint, uint, byte[], long>? handler = index switch
        {
            VFIO_PCI_INTX_IRQ_INDEX => (flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) switch
            {
                VFIO_IRQ_SET_ACTION_MASK => SetIntxMask,
                VFIO_IRQ_SET_ACTION_UNMASK => SetIntxUnmask,
                VFIO_IRQ_SET_ACTION_TRIGGER => SetIntxTrigger,
                _ => null,
            },
            VFIO_PCI_MSI_IRQ_INDEX or VFIO_PCI_MSIX_IRQ_INDEX => (flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) switch
            {
                VFIO_IRQ_SET_ACTION_TRIGGER => SetMsiTrigger,
                _ => null,
            },
            VFIO_PCI_ERR_IRQ_INDEX when Function.IsPcie => (flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) switch
            {
                VFIO_IRQ_SET_ACTION_TRIGGER => SetErrTrigger,
                _ => null,
            },
            VFIO_PCI_REQ_IRQ_INDEX => (flags & VFIO_IRQ_SET_ACTION_TYPE_MASK) switch
            {
                VFIO_IRQ_SET_ACTION_TRIGGER => SetReqTrigger,
                _ => null,
            },
            _ => null,
        };

        return handler is null ? Fail(Errno.ENOTTY) : handler(index, start, count, flags, data);
    }

    private static int Fd(byte[] data, int i) => BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(i * sizeof(int)));

    // ------------------------------------------------------------------ INTx

    // Like vfio_send_intx_eventfd().
    private void SendIntxEventfd()
    {
        EventFdContext? trigger;
        lock (_irqLock)
        {
            trigger = IsIntx && !_virqDisabled && _ctx.Length == 1 ? _ctx[0].Trigger : null;
        }

        trigger?.Signal();
    }

    // Like vfio_pci_intx_mask(): masking follows INTx disable on the hardware (PCI 2.3 masking).
    private void IntxMask()
    {
        lock (_irqLock)
        {
            if (!IsIntx)
            {
                Function.SetIntx(false);
            }
            else if (!_ctx[0].Masked)
            {
                Function.SetIntx(false);
                _ctx[0].Masked = true;
            }
        }
    }

    // Like vfio_pci_intx_unmask_handler(): true when the line is still asserted, so the
    // interrupt is re-sent to the user instead of unmasking.
    private bool IntxUnmaskHandler()
    {
        lock (_irqLock)
        {
            if (!IsIntx)
            {
                Function.SetIntx(true);
                return false;
            }

            if (_ctx[0].Masked && !_virqDisabled)
            {
                var pending = !Function.CheckAndUnmaskIntx();
                _ctx[0].Masked = pending;
                return pending;
            }

            return false;
        }
    }

    // Like vfio_pci_intx_unmask().
    private void IntxUnmask()
    {
        if (IntxUnmaskHandler())
        {
            SendIntxEventfd();
        }
    }

    // Like vfio_intx_handler(): the line is this function's if it asserts it; mask it (the user
    // unmasks after servicing) and signal.
    private void IntxHandler()
    {
        bool handled;
        lock (_irqLock)
        {
            handled = IsIntx && _ctx.Length == 1 && !_ctx[0].Masked && Function.CheckAndMaskIntx();
            if (handled)
            {
                _ctx[0].Masked = true;
            }
        }

        if (handled)
        {
            SendIntxEventfd();
        }
    }

    /// <summary>The user's INTx disable bit changed in the virtual command register.</summary>
    internal void SetVirqDisabled(bool disabled)
    {
        if (disabled && !_virqDisabled)
        {
            _virqDisabled = true;
            IntxMask();
        }
        else if (!disabled && _virqDisabled)
        {
            _virqDisabled = false;
            IntxUnmask();
        }
    }

    // Like vfio_intx_enable().
    private long IntxEnable()
    {
        if (!IsIrqNone)
        {
            return Fail(Errno.EINVAL);
        }

        if (Function.InterruptPin == 0)
        {
            return Fail(Errno.ENODEV);
        }

        _ctx = [new IrqContext { Masked = _virqDisabled }];
        Function.SetIntx(!_virqDisabled);
        _irqType = VFIO_PCI_INTX_IRQ_INDEX;
        return 0;
    }

    // Like vfio_intx_set_signal(): replace the trigger; fd < 0 only removes it.
    private long IntxSetSignal(int fd)
    {
        if (_ctx[0].Trigger is not null)
        {
            Function.FreeIrq(PciIrqType.Intx, 0);
            _ctx[0].Trigger = null;
        }

        if (fd < 0)
        {
            return 0;
        }

        var trigger = EventFdCtxFdGet(fd);
        if (!trigger.TryGetValue(out var ctx))
        {
            return Fail(trigger.Error);
        }

        _ctx[0].Trigger = ctx;
        var requested = Function.RequestIrq(PciIrqType.Intx, 0, IntxHandler);
        if (!requested.IsOk)
        {
            _ctx[0].Trigger = null;
            return Fail(requested.Error);
        }

        return 0;
    }

    // Like vfio_intx_disable().
    private void IntxDisable()
    {
        IntxSetSignal(-1);
        _irqType = IrqNone;
        _ctx = [];
    }

    // Like vfio_pci_set_intx_unmask(). An unmask eventfd (virqfd) needs the eventfd to call back
    // when written, which the model's eventfd does not do: ENOTTY, as the kernel answers the
    // mask-by-eventfd it never implemented.
    private long SetIntxUnmask(uint index, uint start, uint count, uint flags, byte[] data)
    {
        if (!IsIntx || start != 0 || count != 1)
        {
            return Fail(Errno.EINVAL);
        }

        if ((flags & VFIO_IRQ_SET_DATA_NONE) != 0)
        {
            IntxUnmask();
        }
        else if ((flags & VFIO_IRQ_SET_DATA_BOOL) != 0)
        {
            if (data[0] != 0)
            {
                IntxUnmask();
            }
        }
        else if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) != 0 && Fd(data, 0) >= 0)
        {
            return Fail(Errno.ENOTTY);
        }

        return 0;
    }

    // Like vfio_pci_set_intx_mask().
    private long SetIntxMask(uint index, uint start, uint count, uint flags, byte[] data)
    {
        if (!IsIntx || start != 0 || count != 1)
        {
            return Fail(Errno.EINVAL);
        }

        if ((flags & VFIO_IRQ_SET_DATA_NONE) != 0)
        {
            IntxMask();
        }
        else if ((flags & VFIO_IRQ_SET_DATA_BOOL) != 0)
        {
            if (data[0] != 0)
            {
                IntxMask();
            }
        }
        else if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) != 0)
        {
            return Fail(Errno.ENOTTY);
        }

        return 0;
    }

    // Like vfio_pci_set_intx_trigger(): count 0 with DATA_NONE disables; an eventfd enables INTx
    // (or replaces the trigger); DATA_NONE/BOOL fire the trigger (loopback).
    private long SetIntxTrigger(uint index, uint start, uint count, uint flags, byte[] data)
    {
        if (IsIntx && count == 0 && (flags & VFIO_IRQ_SET_DATA_NONE) != 0)
        {
            IntxDisable();
            return 0;
        }

        if (!(IsIntx || IsIrqNone) || start != 0 || count != 1)
        {
            return Fail(Errno.EINVAL);
        }

        if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) != 0)
        {
            var fd = Fd(data, 0);
            if (IsIntx)
            {
                return IntxSetSignal(fd);
            }

            var enabled = IntxEnable();
            if (enabled != 0)
            {
                return enabled;
            }

            var signalled = IntxSetSignal(fd);
            if (signalled != 0)
            {
                IntxDisable();
            }

            return signalled;
        }

        if (!IsIntx)
        {
            return Fail(Errno.EINVAL);
        }

        if ((flags & VFIO_IRQ_SET_DATA_NONE) != 0 || data[0] != 0)
        {
            SendIntxEventfd();
        }

        return 0;
    }

    // ------------------------------------------------------------------ MSI and MSI-X

    // Like vfio_msi_enable(): allocate exactly nvec vectors with memory decode on for the table writes.
    private long MsiEnable(int nvec, bool msix)
    {
        if (!IsIrqNone)
        {
            return Fail(Errno.EINVAL);
        }

        var wasOff = MemoryLockAndEnable();
        KResult allocated;
        try
        {
            allocated = Function.AllocIrqVectors(msix ? PciIrqType.Msix : PciIrqType.Msi, nvec);
        }
        finally
        {
            MemoryUnlockAndRestore(wasOff);
        }

        if (!allocated.IsOk)
        {
            return Fail(allocated.Error);
        }

        _ctx = new IrqContext[nvec];
        for (var i = 0; i < nvec; i++)
        {
            _ctx[i] = new IrqContext();
        }

        _irqType = msix ? (uint)VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_MSI_IRQ_INDEX;
        return 0;
    }

    // Like vfio_msi_set_vector_signal(): drop the vector's trigger; for fd >= 0 wire a new one,
    // rewriting the host's MSI-X message into the table first (a reset, or a user with the table
    // mmapped, may have changed it).
    private long MsiSetVectorSignal(int vector, int fd, bool msix)
    {
        if (vector < 0 || vector >= _ctx.Length)
        {
            return Fail(Errno.EINVAL);
        }

        var type = msix ? PciIrqType.Msix : PciIrqType.Msi;
        if (_ctx[vector].Trigger is not null)
        {
            var off = MemoryLockAndEnable();
            try
            {
                Function.FreeIrq(type, vector);
            }
            finally
            {
                MemoryUnlockAndRestore(off);
            }

            _ctx[vector].Trigger = null;
        }

        if (fd < 0)
        {
            return 0;
        }

        var got = EventFdCtxFdGet(fd);
        if (!got.TryGetValue(out var trigger))
        {
            return Fail(got.Error);
        }

        var wasOff = MemoryLockAndEnable();
        KResult requested;
        try
        {
            if (msix)
            {
                Function.WriteCachedMsixMessage(vector);
            }

            requested = Function.RequestIrq(type, vector, trigger.Signal);
        }
        finally
        {
            MemoryUnlockAndRestore(wasOff);
        }

        if (!requested.IsOk)
        {
            return Fail(requested.Error);
        }

        _ctx[vector].Trigger = trigger;
        return 0;
    }

    // Like vfio_msi_set_block(): all or nothing.
    private long MsiSetBlock(uint start, uint count, byte[]? fds, bool msix)
    {
        if (start >= (uint)_ctx.Length || start + count > (uint)_ctx.Length)
        {
            return Fail(Errno.EINVAL);
        }

        long ret = 0;
        int j;
        var i = 0;
        for (j = (int)start; i < count && ret == 0; i++, j++)
        {
            ret = MsiSetVectorSignal(j, fds is null ? -1 : Fd(fds, i), msix);
        }

        if (ret != 0)
        {
            for (--j; j >= (int)start; j--)
            {
                MsiSetVectorSignal(j, -1, msix);
            }
        }

        return ret;
    }

    // Like vfio_msi_disable().
    private void MsiDisable(bool msix)
    {
        MsiSetBlock(0, (uint)_ctx.Length, null, msix);
        var wasOff = MemoryLockAndEnable();
        try
        {
            Function.FreeIrqVectors();
        }
        finally
        {
            MemoryUnlockAndRestore(wasOff);
        }

        _irqType = IrqNone;
        _ctx = [];
    }

    // Like vfio_pci_set_msi_trigger().
    private long SetMsiTrigger(uint index, uint start, uint count, uint flags, byte[] data)
    {
        var msix = index == VFIO_PCI_MSIX_IRQ_INDEX;
        if (_irqType == index && count == 0 && (flags & VFIO_IRQ_SET_DATA_NONE) != 0)
        {
            MsiDisable(msix);
            return 0;
        }

        if (!(_irqType == index || IsIrqNone))
        {
            return Fail(Errno.EINVAL);
        }

        if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) != 0)
        {
            if (_irqType == index)
            {
                return MsiSetBlock(start, count, data, msix);
            }

            var enabled = MsiEnable((int)(start + count), msix);
            if (enabled != 0)
            {
                return enabled;
            }

            var set = MsiSetBlock(start, count, data, msix);
            if (set != 0)
            {
                MsiDisable(msix);
            }

            return set;
        }

        if (_irqType != index || start + count > (uint)_ctx.Length)
        {
            return Fail(Errno.EINVAL);
        }

        for (var i = start; i < start + count; i++)
        {
            if (_ctx[i].Trigger is not { } trigger)
            {
                continue;
            }

            if ((flags & VFIO_IRQ_SET_DATA_NONE) != 0 || data[i - start] != 0)
            {
                trigger.Signal();
            }
        }

        return 0;
    }

    // ------------------------------------------------------------------ ERR and REQ

    // Like vfio_pci_set_ctx_trigger_single(): DATA_NONE/BOOL fire it (loopback), count 0 with
    // DATA_NONE removes it, an eventfd replaces it, -1 removes it.
    private static long SetCtxTriggerSingle(ref EventFdContext? ctx, uint count, uint flags, byte[] data)
    {
        if ((flags & VFIO_IRQ_SET_DATA_NONE) != 0)
        {
            if (ctx is not null)
            {
                if (count != 0)
                {
                    ctx.Signal();
                }
                else
                {
                    ctx = null;
                }

                return 0;
            }
        }
        else if ((flags & VFIO_IRQ_SET_DATA_BOOL) != 0)
        {
            if (count == 0)
            {
                return Fail(Errno.EINVAL);
            }

            if (data[0] != 0)
            {
                ctx?.Signal();
            }

            return 0;
        }
        else if ((flags & VFIO_IRQ_SET_DATA_EVENTFD) != 0)
        {
            if (count == 0)
            {
                return Fail(Errno.EINVAL);
            }

            var fd = Fd(data, 0);
            if (fd == -1)
            {
                ctx = null;
            }
            else if (fd >= 0)
            {
                var got = EventFdCtxFdGet(fd);
                if (!got.TryGetValue(out var efd))
                {
                    return Fail(got.Error);
                }

                ctx = efd;
            }

            return 0;
        }

        return Fail(Errno.EINVAL);
    }

    // Like vfio_pci_set_err_trigger().
    private long SetErrTrigger(uint index, uint start, uint count, uint flags, byte[] data) =>
        index != VFIO_PCI_ERR_IRQ_INDEX || start != 0 || count > 1
            ? Fail(Errno.EINVAL)
            : SetCtxTriggerSingle(ref _errTrigger, count, flags, data);

    // Like vfio_pci_set_req_trigger().
    private long SetReqTrigger(uint index, uint start, uint count, uint flags, byte[] data) =>
        index != VFIO_PCI_REQ_IRQ_INDEX || start != 0 || count > 1
            ? Fail(Errno.EINVAL)
            : SetCtxTriggerSingle(ref _reqTrigger, count, flags, data);

    /// <summary>The state of one vector (struct vfio_pci_irq_ctx).</summary>
    private sealed class IrqContext
    {
        public EventFdContext? Trigger { get; set; }

        public bool Masked { get; set; }
    }
}
