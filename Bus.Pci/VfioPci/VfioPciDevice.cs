using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Pci.Config;
using KernelModel.Uapi;
using KernelModel.Vfio;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Pci.VfioPci;

/// <summary>
/// A PCI function driven by vfio-pci (struct vfio_pci_core_device): regions BAR0–5, ROM, CONFIG
/// and VGA at <c>index &lt;&lt; 40</c>, BAR mmaps through the device's address space, virtualised
/// config space, INTx/MSI/MSI-X/ERR/REQ interrupts wired to eventfds, function and hot resets.
/// <para>Locks, in order: the bus's reset lock (dev_set->lock) → igate (interrupt configuration)
/// → memory_lock (read: BAR access, faults; write: whatever changes whether BAR memory may be
/// touched) → the vconfig lock → the function's lock. A fault arrives holding mmap_lock, so
/// mmap_lock → memory_lock; zapping takes only the page-table lock, so memory_lock may be held
/// for write across a zap (RFC 04/10).</para>
/// </summary>
public sealed partial class VfioPciDevice : VfioDevice, IPciErrorHandler
{
    private readonly Lock _igate = new();
    private readonly bool[] _barMmapSupported = new bool[6];
    private VfioPciConfig? _vconfig;
    private PciSavedState? _savedState;
    private bool _resetWorks;
    private bool _needsReset;
    private long _slowPathAccesses;
    private long _faults;

    internal VfioPciDevice(PciFunction function)
        : base(function.Device)
    {
        Function = function;
        Machine = function.Machine;
    }

    /// <summary>The PCI function.</summary>
    public PciFunction Function { get; }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>vfio-pci BARs may be mapped for peer-to-peer DMA: it implements <see cref="VmaToPfn"/>.</summary>
    public override bool AllowsPeerToPeer => true;

    /// <summary>
    /// Reads and writes of BAR and ROM regions through the fd (pread/pwrite): the slow path a user
    /// takes for registers it could not mmap.
    /// </summary>
    public long SlowPathAccesses => Interlocked.Read(ref _slowPathAccesses);

    /// <summary>Page faults on BAR mmaps that reached the driver's fault handler.</summary>
    public long Faults => Interlocked.Read(ref _faults);

    /// <summary>The BAR holding the MSI-X table (0xff: none), as found at open.</summary>
    public int MsixBar { get; private set; } = 0xff;

    /// <summary>The MSI-X table's offset in its BAR.</summary>
    public ulong MsixOffset { get; private set; }

    /// <summary>The MSI-X table's size in bytes.</summary>
    public ulong MsixSize { get; private set; }

    /// <summary>reset_works: VFIO_DEVICE_RESET is available (decided at open).</summary>
    public bool ResetWorks => _resetWorks;

    /// <summary>True once the device must be reset before its next user (no reset at its last close).</summary>
    public bool NeedsReset => _needsReset;

    /// <summary>True while a user has the device open (its virtual config space exists).</summary>
    public bool IsEnabled => _vconfig is not null;

    /// <summary>memory_lock: see the class remarks for the lock order.</summary>
    internal RwSemaphore MemoryLock { get; } = new();

    /// <summary>True when the machine lets the MSI-X table's page be mmapped.</summary>
    private bool MsixMappable => Machine.Settings.MsixMappable;

    private PageGeometry Geometry => Machine.Geometry;

    // ------------------------------------------------------------------ open and close

    // Like vfio_pci_core_enable() + vfio_pci_core_finish_enable().
    /// <inheritdoc />
    protected override KResult OpenDevice()
    {
        var fn = Function;
        fn.ClearMaster();
        fn.EnableDevice();
        _resetWorks = fn.TryResetFunction().IsOk;
        _savedState = fn.SaveState();
        if ((fn.Command & PciCommand.IntxDisable) != 0)
        {
            fn.SetIntx(true);
        }

        _vconfig = new VfioPciConfig(this);
        if (fn.MsixCap != 0)
        {
            var flags = fn.ReadConfigWord(fn.MsixCap + (int)PciMsixOffset.Flags);
            var table = fn.ReadConfigDword(fn.MsixCap + (int)PciMsixOffset.Table);
            MsixBar = (int)(table & (uint)PciMsixLocation.BirMask);
            MsixOffset = table & (uint)PciMsixLocation.OffsetMask;
            MsixSize = (ulong)((flags & (ushort)PciMsixFlags.QSize) + 1) * 16;
        }
        else
        {
            MsixBar = 0xff;
        }

        ProbeMmaps();
        return KResult.Ok;
    }

    // Like vfio_pci_core_close_device(): the release notification goes first (RFC 07/10), so
    // whoever mapped this device's BARs for DMA drops those mappings before the device is
    // disabled and reset under them; then vfio_pci_core_disable().
    /// <inheritdoc />
    protected override void CloseDevice()
    {
        NotifyRelease();
        Disable();
        lock (_igate)
        {
            _errTrigger = null;
            _reqTrigger = null;
        }
    }

    // Like vfio_pci_core_disable(): D0, no bus mastering, every interrupt off, every BAR mmap zapped
    // and memory disabled under memory_lock; the function is reset to the state saved at open
    // (reset_works) and loses bus mastering; a bus reset follows if a reset is still owed and no
    // device sharing the bus is open.
    private void Disable()
    {
        var fn = Function;
        fn.SetPowerState(0);
        fn.ClearMaster();
        lock (_igate)
        {
            SetIrqs(VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, (uint)_irqType, 0, 0, []);
            _virqDisabled = false;
        }

        ZapAndDownWriteMemoryLock();
        try
        {
            _vconfig = null;
            _needsReset = true;
            fn.WriteConfigWord((int)PciConfigOffset.Command, (ushort)PciCommand.IntxDisable);
            if (_resetWorks && fn.ResetFunctionWithoutRestore().IsOk)
            {
                _needsReset = false;
            }

            if (_savedState is { } saved)
            {
                fn.RestoreState(saved);
                _savedState = null;
            }
        }
        finally
        {
            MemoryLock.UpWrite();
        }

        fn.DisableDevice();
        DevSetTryReset();
    }

    // vfio_pci_probe_mmaps(): memory BARs of at least a page may be mmapped.
    private void ProbeMmaps()
    {
        for (var i = 0; i < 6; i++)
        {
            var bar = Function.Bars[i];
            _barMmapSupported[i] = bar.IsMemory && bar.Size != 0 && (bar.Size >= Geometry.PageSize || Geometry.IsPageAligned(bar.Start));
        }
    }

    // ------------------------------------------------------------------ ioctl

    // Like vfio_pci_core_ioctl().
    /// <inheritdoc />
    protected override long Ioctl(uint request, IoctlArg arg) => request switch
    {
        VFIO_DEVICE_GET_INFO => GetInfo(arg),
        VFIO_DEVICE_GET_REGION_INFO => GetRegionInfo(arg),
        VFIO_DEVICE_GET_IRQ_INFO => GetIrqInfo(arg),
        VFIO_DEVICE_SET_IRQS => SetIrqsIoctl(arg),
        VFIO_DEVICE_RESET => ResetIoctl(),
        VFIO_DEVICE_GET_PCI_HOT_RESET_INFO => GetHotResetInfo(arg),
        VFIO_DEVICE_PCI_HOT_RESET => HotResetIoctl(arg),
        _ => -(long)Errno.ENOTTY,
    };

    // Like vfio_pci_ioctl_get_info(): cap_offset is returned only to a caller whose argsz has room.
    private long GetInfo(IoctlArg arg)
    {
        var minsz = 16;
        const int capsz = 20;
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser<VfioDeviceInfo>(arg.Buffer, minsz, out var info))
        {
            return -(long)Errno.EFAULT;
        }

        if (info.Argsz < minsz)
        {
            return -(long)Errno.EINVAL;
        }

        if (info.Argsz >= capsz)
        {
            minsz = capsz;
            info.CapOffset = 0;
        }

        info.Flags = VFIO_DEVICE_FLAGS_PCI | (_resetWorks ? (uint)VFIO_DEVICE_FLAGS_RESET : 0);
        info.NumRegions = VFIO_PCI_NUM_REGIONS;
        info.NumIrqs = VFIO_PCI_NUM_IRQS;
        return UapiStruct.TryCopyToUser(arg.Buffer, info, minsz) ? 0 : -(long)Errno.EFAULT;
    }

    // ------------------------------------------------------------------ services

    /// <summary>
    /// vfio_pci_zap_bars(): one unmap_mapping_range() over the BAR regions of the device's
    /// address space zaps every mmap of every BAR in every process (RFC 04/10).
    /// </summary>
    internal void ZapBars() =>
        UnmapMappingRange(VfioPciRegions.IndexToOffset(VFIO_PCI_BAR0_REGION_INDEX),
            VfioPciRegions.IndexToOffset(VFIO_PCI_ROM_REGION_INDEX) - VfioPciRegions.IndexToOffset(VFIO_PCI_BAR0_REGION_INDEX));

    /// <summary>vfio_pci_zap_and_down_write_memory_lock(): memory_lock for write, then the zap.</summary>
    internal void ZapAndDownWriteMemoryLock()
    {
        MemoryLock.DownWrite();
        ZapBars();
    }

    /// <summary>
    /// vfio_pci_memory_lock_and_enable(): memory_lock for write with memory decode on in the
    /// hardware, for the host's own MSI-X table writes. Returns whether decode was off.
    /// </summary>
    internal bool MemoryLockAndEnable()
    {
        MemoryLock.DownWrite();
        var wasOff = !Function.MemoryEnabled;
        if (wasOff)
        {
            Function.UpdateCommand(c => c | PciCommand.Memory);
        }

        return wasOff;
    }

    /// <summary>vfio_pci_memory_unlock_and_restore(): decode back as it was, memory_lock released.</summary>
    internal void MemoryUnlockAndRestore(bool wasOff)
    {
        if (wasOff)
        {
            Function.UpdateCommand(c => c & ~PciCommand.Memory);
        }

        MemoryLock.UpWrite();
    }

    /// <summary>
    /// __vfio_pci_memory_enabled(): the user's command register enables memory and the function is
    /// not in D3hot. Callers hold memory_lock.
    /// </summary>
    internal bool MemoryEnabledLocked() =>
        _vconfig is { } v && (v.VirtualCommand & PciCommand.Memory) != 0 && Function.PowerState < 3;

    /// <summary>
    /// vfio_lock_and_set_power_state(): a user's PMCSR write. Going to D3hot zaps the BAR mmaps
    /// first: memory is not accessible there.
    /// </summary>
    internal void LockAndSetPowerState(int state)
    {
        if (state >= 3)
        {
            ZapAndDownWriteMemoryLock();
        }
        else
        {
            MemoryLock.DownWrite();
        }

        try
        {
            Function.SetPowerState(state);
        }
        finally
        {
            MemoryLock.UpWrite();
        }
    }

    // Like vfio_pci_core_request(): relay the unregistration's request to the user.
    /// <inheritdoc />
    protected override void Request(uint count)
    {
        lock (_igate)
        {
            _reqTrigger?.Signal();
        }
    }

    // Like vfio_pci_core_aer_err_detected().
    /// <inheritdoc />
    void IPciErrorHandler.ErrorDetected(PciFunction function)
    {
        lock (_igate)
        {
            _errTrigger?.Signal();
        }
    }

    private static long Fail(Errno errno) => -(long)errno;

    // eventfd_ctx_fdget(): EBADF for a bad fd, EINVAL for a file that is not an eventfd.
    private static KResult<EventFdContext> EventFdCtxFdGet(int fd)
    {
        if (UserProcess.Current is not { } current)
        {
            return Errno.EBADF;
        }

        var got = current.Files.Get(fd);
        if (!got.TryGetValue(out var file))
        {
            return got.Error;
        }

        try
        {
            return file.PrivateData is EventFdContext ctx ? ctx : Errno.EINVAL;
        }
        finally
        {
            file.Put();
        }
    }
}
