using System.Buffers.Binary;
using System.Numerics;
using KernelModel.Kernel;
using KernelModel.Pci.Config;
using KernelModel.Pci.Irq;
using KernelModel.Pci.Msix;

namespace KernelModel.Pci;

/// <summary>What the bound driver is told about a function's errors (struct pci_error_handlers).</summary>
public interface IPciErrorHandler
{
    /// <summary>error_detected(): AER reported an error on the function.</summary>
    void ErrorDetected(PciFunction function);
}

/// <summary>The configuration a function had when the host saved it (pci_save_state).</summary>
public sealed class PciSavedState
{
    internal PciSavedState(byte[] config) => Config = config;

    internal byte[] Config { get; }
}

/// <summary>
/// A PCI function (struct pci_dev and the hardware behind it): its configuration space with the
/// type 0 header and capability list, its BARs, expansion ROM, power state, resets and interrupts.
/// <para>The device side (what a device would do on the bus) is <see cref="RaiseInterrupt"/>,
/// <see cref="DeassertIntx"/> and <see cref="ReportError"/>; the rest is what the host's PCI
/// core does to it: config accesses, enable/disable, save/restore, function and bus resets, and
/// IRQ vector allocation.</para>
/// <para>Lock order: a driver's locks (vfio-pci's memory_lock, igate) → the function's lock. IRQ
/// handlers run with no function lock held.</para>
/// </summary>
public sealed class PciFunction
{
    private readonly Lock _lock = new();
    private readonly PciBar[] _bars;
    private readonly uint _intxIrq;
    private uint _msiBase;
    private int _msiCount;
    private uint[] _msixIrqs = [];
    private MsixEntry[] _msixCache = [];
    private bool _intxAsserted;

    internal PciFunction(Machine machine, Device device, PciAddress address, PciFunctionSpec spec, PciBus bus, bool multiFunction)
    {
        Machine = machine;
        Device = device;
        Address = address;
        Bus = bus;
        Interrupts = bus.Host.Interrupts;
        Spec = spec;
        Config = new PciConfigSpace(spec.Pcie is null ? 256 : 4096);
        _bars = BuildBars(device, spec);
        if (spec.Rom is { } rom)
        {
            Rom = new PciRom(rom.Start, rom.Size);
            Rom.Contents.Write(0, [0x55, 0xaa, (byte)Math.Min(255UL, rom.Size / 512)]);
            Rom.Contents.Write(0x20, "KernelModel option ROM"u8);
        }

        InterruptPin = (int)spec.InterruptPin;
        if (InterruptPin != 0)
        {
            _intxIrq = Interrupts.Allocate(1);
        }

        BuildConfig(multiFunction);
        if (spec.Msix is { } msix)
        {
            var tableBar = _bars[(int)msix.TableBar];
            var pbaBar = _bars[(int)(msix.PbaBar ?? msix.TableBar)];
            Msix = new MsixTable(tableBar.Region!, tableBar.Index, msix.TableOffset, pbaBar.Region!, pbaBar.Index,
                msix.PbaOffset ?? ((msix.TableOffset + (msix.Vectors * 16) + 7) & ~7UL), (int)msix.Vectors);
            Msix.Reset();
        }
    }

    /// <summary>The machine.</summary>
    public Machine Machine { get; }

    /// <summary>The device (struct device) this function is.</summary>
    public Device Device { get; }

    /// <summary>Its address.</summary>
    public PciAddress Address { get; }

    /// <summary>The bus (and slot) it sits on, shared with the functions a bus reset also resets.</summary>
    public PciBus Bus { get; }

    /// <summary>The host's interrupt controller.</summary>
    public InterruptController Interrupts { get; }

    /// <summary>The properties it was built from.</summary>
    public PciFunctionSpec Spec { get; }

    /// <summary>The configuration space as the hardware implements it.</summary>
    public PciConfigSpace Config { get; }

    /// <summary>BAR0..BAR5.</summary>
    public IReadOnlyList<PciBar> Bars => _bars;

    /// <summary>The expansion ROM, if any.</summary>
    public PciRom? Rom { get; }

    /// <summary>The MSI-X table and PBA, if the function has MSI-X.</summary>
    public MsixTable? Msix { get; }

    /// <summary>PCI_INTERRUPT_PIN: 0 none, 1..4 INTA..INTD.</summary>
    public int InterruptPin { get; }

    /// <summary>The offset of the PM capability, 0 if absent (pdev->pm_cap).</summary>
    public int PmCap { get; private set; }

    /// <summary>The offset of the MSI capability, 0 if absent (pdev->msi_cap).</summary>
    public int MsiCap { get; private set; }

    /// <summary>The offset of the MSI-X capability, 0 if absent (pdev->msix_cap).</summary>
    public int MsixCap { get; private set; }

    /// <summary>The offset of the PCI Express capability, 0 if absent (pdev->pcie_cap).</summary>
    public int ExpCap { get; private set; }

    /// <summary>pci_is_pcie().</summary>
    public bool IsPcie => ExpCap != 0;

    /// <summary>True when the function implements FLR.</summary>
    public bool HasFlr => Spec.Pcie?.Flr == true;

    /// <summary>Vectors the MSI capability can send (0 without MSI).</summary>
    public int MsiVectors => Spec.Msi is { } msi ? (int)msi.Vectors : 0;

    /// <summary>The MSI-X table size (0 without MSI-X).</summary>
    public int MsixVectors => Msix?.Vectors ?? 0;

    /// <summary>The driver's error handlers.</summary>
    public IPciErrorHandler? ErrorHandler { get; set; }

    /// <summary>Function level resets done (FLR or the function's own bus reset).</summary>
    public long FunctionResets { get; private set; }

    /// <summary>Secondary bus resets that reached this function.</summary>
    public long BusResets { get; private set; }

    /// <summary>PCI_COMMAND as the hardware holds it.</summary>
    public PciCommand Command
    {
        get
        {
            lock (_lock)
            {
                return (PciCommand)Config.ReadWord((int)PciConfigOffset.Command);
            }
        }
    }

    /// <summary>True when the function decodes memory (PCI_COMMAND_MEMORY).</summary>
    public bool MemoryEnabled => (Command & PciCommand.Memory) != 0;

    /// <summary>The power state from PMCSR: 0 (D0) .. 3 (D3hot).</summary>
    public int PowerState
    {
        get
        {
            lock (_lock)
            {
                return PmCap == 0 ? 0 : Config.ReadWord(PmCap + (int)PciPmOffset.Ctrl) & (int)PciPmCtrl.StateMask;
            }
        }
    }

    /// <summary>True while the function asserts its INTx line.</summary>
    public bool IntxAsserted
    {
        get
        {
            lock (_lock)
            {
                return _intxAsserted;
            }
        }
    }

    /// <summary>
    /// pci_reset_function() would succeed: the function has FLR, or it is alone on a bus whose
    /// reset the platform supports (so a bus reset only resets it).
    /// </summary>
    public bool CanResetFunction => HasFlr || (Spec.BusReset && Bus.Functions.Count == 1);

    // ------------------------------------------------------------------ config space

    /// <summary>A configuration read (pci_user_read_config_*): <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>.</summary>
    public KResult ReadConfig(int offset, Span<byte> buffer)
    {
        if (offset < 0 || offset > Config.Size - buffer.Length)
        {
            return Errno.EINVAL;
        }

        lock (_lock)
        {
            Config.Read(offset, buffer);
        }

        return KResult.Ok;
    }

    /// <summary>
    /// A configuration write (pci_user_write_config_*): read-only bits ignore it; writing
    /// PCI_EXP_DEVCTL_BCR_FLR starts a function level reset; clearing INTx disable while the line
    /// is asserted delivers the interrupt.
    /// </summary>
    public KResult WriteConfig(int offset, ReadOnlySpan<byte> buffer)
    {
        if (offset < 0 || offset > Config.Size - buffer.Length)
        {
            return Errno.EINVAL;
        }

        bool deliverIntx;
        lock (_lock)
        {
            Config.Write(offset, buffer);
            if (ExpCap != 0 && Overlaps(offset, buffer.Length, ExpCap + (int)PciExpOffset.DevCtl + 1, 1))
            {
                var ctl = Config.ReadWord(ExpCap + (int)PciExpOffset.DevCtl);
                if ((ctl & (ushort)PciExpDevCtl.BcrFlr) != 0)
                {
                    Config.SetWord(ExpCap + (int)PciExpOffset.DevCtl, (ushort)(ctl & ~(ushort)PciExpDevCtl.BcrFlr));
                    if (HasFlr)
                    {
                        ResetLocked();
                        FunctionResets++;
                    }
                }
            }

            deliverIntx = _intxAsserted && (Config.ReadWord((int)PciConfigOffset.Command) & (ushort)PciCommand.IntxDisable) == 0;
        }

        if (deliverIntx)
        {
            Interrupts.Raise(_intxIrq);
        }

        return KResult.Ok;
    }

    /// <summary>Reads a 16-bit register.</summary>
    public ushort ReadConfigWord(int offset)
    {
        lock (_lock)
        {
            return Config.ReadWord(offset);
        }
    }

    /// <summary>Reads a 32-bit register.</summary>
    public uint ReadConfigDword(int offset)
    {
        lock (_lock)
        {
            return Config.ReadDword(offset);
        }
    }

    /// <summary>Writes a 16-bit register.</summary>
    public void WriteConfigWord(int offset, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        WriteConfig(offset, b);
    }

    // ------------------------------------------------------------------ the host's PCI core

    /// <summary>pci_enable_device(): decode the memory and I/O ranges the BARs have.</summary>
    public void EnableDevice() => UpdateCommand(c => c
        | (_bars.Any(b => b.IsMemory) || Rom is not null ? PciCommand.Memory : 0)
        | (_bars.Any(b => b.IsIo) ? PciCommand.Io : 0));

    /// <summary>pci_disable_device(): stop the function from initiating DMA.</summary>
    public void DisableDevice() => ClearMaster();

    /// <summary>pci_clear_master().</summary>
    public void ClearMaster() => UpdateCommand(c => c & ~PciCommand.Master);

    /// <summary>pci_intx(): lets the function assert INTx (true) or not (PCI_COMMAND_INTX_DISABLE).</summary>
    public void SetIntx(bool enable) => UpdateCommand(c => enable ? c & ~PciCommand.IntxDisable : c | PciCommand.IntxDisable);

    /// <summary>Changes PCI_COMMAND through the write mask (and its side effects).</summary>
    public void UpdateCommand(Func<PciCommand, PciCommand> update)
    {
        PciCommand value;
        lock (_lock)
        {
            value = update((PciCommand)Config.ReadWord((int)PciConfigOffset.Command));
        }

        WriteConfigWord((int)PciConfigOffset.Command, (ushort)value);
    }

    /// <summary>pci_set_power_state() for D0..D3hot. EINVAL without a PM capability (D0 is always fine).</summary>
    public KResult SetPowerState(int state)
    {
        if (state is < 0 or > 3)
        {
            return Errno.EINVAL;
        }

        if (PmCap == 0)
        {
            return state == 0 ? KResult.Ok : Errno.EIO;
        }

        var at = PmCap + (int)PciPmOffset.Ctrl;
        lock (_lock)
        {
            var ctrl = Config.ReadWord(at);
            var wasD3 = (ctrl & (int)PciPmCtrl.StateMask) == 3;
            Config.SetWord(at, (ushort)((ctrl & ~(int)PciPmCtrl.StateMask) | state));

            // Leaving D3hot without No_Soft_Reset is a reset of the function's configuration.
            if (wasD3 && state == 0 && (ctrl & (ushort)PciPmCtrl.NoSoftReset) == 0)
            {
                ResetLocked();
                FunctionResets++;
            }
        }

        return KResult.Ok;
    }

    /// <summary>pci_save_state().</summary>
    public PciSavedState SaveState()
    {
        lock (_lock)
        {
            return new PciSavedState(Config.Snapshot());
        }
    }

    /// <summary>pci_restore_state(): the saved configuration, then the MSI-X messages the host programmed.</summary>
    public void RestoreState(PciSavedState state)
    {
        lock (_lock)
        {
            Config.Restore(state.Config);
            for (var v = 0; v < _msixCache.Length; v++)
            {
                Msix!.Write(v, _msixCache[v]);
            }
        }
    }

    /// <summary>
    /// pci_try_reset_function(): save, quiesce (INTx disabled, no decode), reset, restore. ENOTTY
    /// when the function cannot be reset on its own (no FLR and not alone on a resettable bus).
    /// </summary>
    public KResult TryResetFunction()
    {
        if (!CanResetFunction)
        {
            return Errno.ENOTTY;
        }

        var saved = SaveState();
        WriteConfigWord((int)PciConfigOffset.Command, (ushort)PciCommand.IntxDisable);
        lock (_lock)
        {
            ResetLocked();
            FunctionResets++;
        }

        RestoreState(saved);
        return KResult.Ok;
    }

    /// <summary>__pci_reset_function_locked(): the reset alone, without the save and restore around it. ENOTTY when it cannot.</summary>
    public KResult ResetFunctionWithoutRestore()
    {
        if (!CanResetFunction)
        {
            return Errno.ENOTTY;
        }

        lock (_lock)
        {
            ResetLocked();
            FunctionResets++;
        }

        return KResult.Ok;
    }

    /// <summary>The reset of a secondary bus reset, without the save and restore around it (the bus does those).</summary>
    internal void BusReset()
    {
        lock (_lock)
        {
            ResetLocked();
            BusResets++;
        }
    }

    // Every register returns to its power-on value (BARs unassigned, no decode); the MSI-X table
    // and PBA, kept in BAR memory, are reset too; the INTx line drops.
    private void ResetLocked()
    {
        Config.Reset();
        Msix?.Reset();
        _intxAsserted = false;
    }

    // ------------------------------------------------------------------ host IRQs

    /// <summary>
    /// pci_alloc_irq_vectors() for exactly <paramref name="count"/> MSI or MSI-X vectors: host IRQs
    /// are allocated, the messages written (MSI capability or MSI-X table entries, unmasked) and
    /// the mechanism enabled, with INTx disabled. ENOSPC beyond what the function supports; EINVAL
    /// if vectors are already allocated or for INTx.
    /// </summary>
    public KResult AllocIrqVectors(PciIrqType type, int count)
    {
        lock (_lock)
        {
            if (_msiCount != 0 || _msixIrqs.Length != 0 || count <= 0 || type == PciIrqType.Intx)
            {
                return Errno.EINVAL;
            }

            if (type == PciIrqType.Msi)
            {
                if (count > MsiVectors)
                {
                    return Errno.ENOSPC;
                }

                var block = BitOperations.RoundUpToPowerOf2((uint)count);
                _msiBase = Interrupts.Allocate(block, block);
                _msiCount = count;
                var flagsAt = MsiCap + (int)PciMsiOffset.Flags;
                var flags = Config.ReadWord(flagsAt);
                var is64 = (flags & (ushort)PciMsiFlags.Is64Bit) != 0;
                Config.WriteDword(MsiCap + (int)PciMsiOffset.AddressLo, (uint)InterruptController.MsiAddress);
                Config.WriteWord(MsiCap + (int)(is64 ? PciMsiOffset.Data64 : PciMsiOffset.Data32), unchecked((ushort)_msiBase));
                var qsize = BitOperations.Log2(block) << 4;
                Config.WriteWord(flagsAt, (ushort)((flags & ~(ushort)PciMsiFlags.QSize) | qsize | (ushort)PciMsiFlags.Enable));
            }
            else
            {
                if (count > MsixVectors)
                {
                    return Errno.ENOSPC;
                }

                _msixIrqs = new uint[count];
                _msixCache = new MsixEntry[count];
                for (var v = 0; v < count; v++)
                {
                    _msixIrqs[v] = Interrupts.Allocate(1);
                    _msixCache[v] = new MsixEntry(InterruptController.MsiAddress, _msixIrqs[v], Masked: false);
                    Msix!.Write(v, _msixCache[v]);
                }

                var flagsAt = MsixCap + (int)PciMsixOffset.Flags;
                Config.WriteWord(flagsAt, (ushort)((Config.ReadWord(flagsAt) & ~(ushort)PciMsixFlags.MaskAll) | (ushort)PciMsixFlags.Enable));
            }

            var cmd = (ushort)(Config.ReadWord((int)PciConfigOffset.Command) | (ushort)PciCommand.IntxDisable);
            Config.WriteWord((int)PciConfigOffset.Command, cmd);
        }

        return KResult.Ok;
    }

    /// <summary>pci_free_irq_vectors(): MSI or MSI-X disabled, table entries masked, host IRQs freed.</summary>
    public void FreeIrqVectors()
    {
        lock (_lock)
        {
            if (_msiCount != 0)
            {
                for (var v = 0; v < _msiCount; v++)
                {
                    Interrupts.FreeIrq(_msiBase + (uint)v);
                }

                var flagsAt = MsiCap + (int)PciMsiOffset.Flags;
                Config.WriteWord(flagsAt, (ushort)(Config.ReadWord(flagsAt) & ~(ushort)(PciMsiFlags.Enable | PciMsiFlags.QSize)));
                _msiCount = 0;
            }

            if (_msixIrqs.Length != 0)
            {
                for (var v = 0; v < _msixIrqs.Length; v++)
                {
                    Interrupts.FreeIrq(_msixIrqs[v]);
                    Msix!.Write(v, _msixCache[v] with { Masked = true });
                }

                var flagsAt = MsixCap + (int)PciMsixOffset.Flags;
                Config.WriteWord(flagsAt, (ushort)(Config.ReadWord(flagsAt) & ~(ushort)PciMsixFlags.Enable));
                _msixIrqs = [];
                _msixCache = [];
            }
        }
    }

    /// <summary>Vectors allocated for <paramref name="type"/> (1 for INTx when the function has a pin).</summary>
    public int AllocatedVectors(PciIrqType type)
    {
        lock (_lock)
        {
            return type switch
            {
                PciIrqType.Intx => InterruptPin != 0 ? 1 : 0,
                PciIrqType.Msi => _msiCount,
                _ => _msixIrqs.Length,
            };
        }
    }

    /// <summary>pci_irq_vector(): the host IRQ of a vector; ENXIO when not allocated.</summary>
    public KResult<uint> IrqVector(PciIrqType type, int vector)
    {
        lock (_lock)
        {
            return type switch
            {
                PciIrqType.Intx when InterruptPin != 0 && vector == 0 => _intxIrq,
                PciIrqType.Msi when vector >= 0 && vector < _msiCount => _msiBase + (uint)vector,
                PciIrqType.Msix when vector >= 0 && vector < _msixIrqs.Length => _msixIrqs[vector],
                _ => Errno.ENXIO,
            };
        }
    }

    /// <summary>request_irq() for a vector. ENXIO: not allocated; EBUSY: it has a handler.</summary>
    public KResult RequestIrq(PciIrqType type, int vector, Action handler)
    {
        var irq = IrqVector(type, vector);
        if (!irq.TryGetValue(out var number))
        {
            return irq.Error;
        }

        return Interrupts.RequestIrq(number, handler) ? KResult.Ok : Errno.EBUSY;
    }

    /// <summary>free_irq() for a vector.</summary>
    public void FreeIrq(PciIrqType type, int vector)
    {
        if (IrqVector(type, vector).TryGetValue(out var number))
        {
            Interrupts.FreeIrq(number);
        }
    }

    /// <summary>
    /// get_cached_msi_msg() + pci_write_msi_msg(): writes the host's message for an MSI-X vector
    /// back into the table, whatever was written there since (a reset, or a user's mmap).
    /// </summary>
    public void WriteCachedMsixMessage(int vector)
    {
        lock (_lock)
        {
            if (vector >= 0 && vector < _msixCache.Length)
            {
                Msix!.Write(vector, _msixCache[vector]);
            }
        }
    }

    /// <summary>
    /// pci_check_and_mask_intx(): if the function asserts INTx and may, mask it with INTx disable
    /// and return true (the interrupt is this function's).
    /// </summary>
    public bool CheckAndMaskIntx()
    {
        lock (_lock)
        {
            var cmd = Config.ReadWord((int)PciConfigOffset.Command);
            if (!_intxAsserted || (cmd & (ushort)PciCommand.IntxDisable) != 0)
            {
                return false;
            }

            Config.WriteWord((int)PciConfigOffset.Command, (ushort)(cmd | (ushort)PciCommand.IntxDisable));
            return true;
        }
    }

    /// <summary>
    /// pci_check_and_unmask_intx(): clears INTx disable unless the line is still asserted (then it
    /// stays masked and false says an interrupt is pending).
    /// </summary>
    public bool CheckAndUnmaskIntx()
    {
        lock (_lock)
        {
            if (_intxAsserted)
            {
                return false;
            }

            var cmd = Config.ReadWord((int)PciConfigOffset.Command);
            Config.WriteWord((int)PciConfigOffset.Command, (ushort)(cmd & ~(ushort)PciCommand.IntxDisable));
            return true;
        }
    }

    // ------------------------------------------------------------------ what the device does

    /// <summary>
    /// The device signals an interrupt. INTx asserts the (level) line: delivered unless INTx
    /// disable masks it. MSI writes the capability's message (data + vector). MSI-X reads table
    /// entry <paramref name="vector"/> from BAR memory: a masked entry (or function mask) sets the
    /// pending bit; otherwise the entry's message is written, wherever it points.
    /// </summary>
    public PciInterruptResult RaiseInterrupt(PciIrqType type, int vector = 0)
    {
        ulong address;
        uint data;
        lock (_lock)
        {
            switch (type)
            {
                case PciIrqType.Intx:
                    if (InterruptPin == 0 || vector != 0)
                    {
                        return PciInterruptResult.Disabled;
                    }

                    _intxAsserted = true;
                    Config.SetWord((int)PciConfigOffset.Status, (ushort)(Config.ReadWord((int)PciConfigOffset.Status) | (ushort)PciStatus.Interrupt));
                    if ((Config.ReadWord((int)PciConfigOffset.Command) & (ushort)PciCommand.IntxDisable) != 0)
                    {
                        return PciInterruptResult.Pending;
                    }

                    address = 0;
                    data = _intxIrq;
                    break;

                case PciIrqType.Msi:
                {
                    if (MsiCap == 0)
                    {
                        return PciInterruptResult.Disabled;
                    }

                    var flags = Config.ReadWord(MsiCap + (int)PciMsiOffset.Flags);
                    var enabled = 1 << ((flags & (ushort)PciMsiFlags.QSize) >> 4);
                    if ((flags & (ushort)PciMsiFlags.Enable) == 0 || vector < 0 || vector >= enabled)
                    {
                        return PciInterruptResult.Disabled;
                    }

                    var is64 = (flags & (ushort)PciMsiFlags.Is64Bit) != 0;
                    address = Config.ReadDword(MsiCap + (int)PciMsiOffset.AddressLo)
                        | (is64 ? (ulong)Config.ReadDword(MsiCap + (int)PciMsiOffset.AddressHi) << 32 : 0);
                    data = (uint)(Config.ReadWord(MsiCap + (int)(is64 ? PciMsiOffset.Data64 : PciMsiOffset.Data32)) | vector);
                    break;
                }

                default:
                {
                    if (Msix is null || vector < 0 || vector >= Msix.Vectors)
                    {
                        return PciInterruptResult.Disabled;
                    }

                    var flags = Config.ReadWord(MsixCap + (int)PciMsixOffset.Flags);
                    if ((flags & (ushort)PciMsixFlags.Enable) == 0)
                    {
                        return PciInterruptResult.Disabled;
                    }

                    var entry = Msix.Read(vector);
                    if (entry.Masked || (flags & (ushort)PciMsixFlags.MaskAll) != 0)
                    {
                        Msix.SetPending(vector, true);
                        return PciInterruptResult.Pending;
                    }

                    Msix.SetPending(vector, false);
                    address = entry.Address;
                    data = entry.Data;
                    break;
                }
            }
        }

        return type == PciIrqType.Intx ? Interrupts.Raise(data) : Interrupts.DeliverMessage(address, data);
    }

    /// <summary>The device stops asserting INTx.</summary>
    public void DeassertIntx()
    {
        lock (_lock)
        {
            _intxAsserted = false;
            Config.SetWord((int)PciConfigOffset.Status, (ushort)(Config.ReadWord((int)PciConfigOffset.Status) & ~(ushort)PciStatus.Interrupt));
        }
    }

    /// <summary>AER reports an error on the function: its driver's error_detected runs.</summary>
    public void ReportError() => ErrorHandler?.ErrorDetected(this);

    /// <inheritdoc />
    public override string ToString() => $"pci {Address}";

    // ------------------------------------------------------------------ construction

    private static bool Overlaps(int offset, int length, int at, int size) => offset < at + size && at < offset + length;

    private static PciBar[] BuildBars(Device device, PciFunctionSpec spec)
    {
        var bars = new PciBar?[6];
        foreach (var region in device.Mmio)
        {
            var name = region.Name.StartsWith(device.Name + " ", StringComparison.Ordinal) ? region.Name[(device.Name.Length + 1)..] : region.Name;
            if (name.Length != 4 || !name.StartsWith("BAR", StringComparison.Ordinal) || name[3] < '0' || name[3] > '5')
            {
                throw new System.IO.InvalidDataException($"MMIO range '{name}' is not a BAR (BAR0..BAR5)");
            }

            var index = name[3] - '0';
            var start = region.Start.Value;
            var size = region.Size;
            spec.Bars.TryGetValue(name, out var attrs);
            var above4G = start + (size - 1) > uint.MaxValue;
            var is64 = attrs?.Is64Bit ?? above4G;
            var prefetch = attrs?.Prefetchable ?? above4G;
            if (!BitOperations.IsPow2(size) || (start & (size - 1)) != 0)
            {
                throw new System.IO.InvalidDataException($"{name}: size 0x{size:x} is not a power of two or 0x{start:x} is not aligned to it");
            }

            if (!is64 && above4G)
            {
                throw new System.IO.InvalidDataException($"{name}: a 32-bit BAR cannot decode 0x{start:x}+0x{size:x}");
            }

            if (is64 && index == 5)
            {
                throw new System.IO.InvalidDataException($"{name}: a 64-bit BAR needs the next BAR register");
            }

            Claim(bars, index, name);
            bars[index] = new PciBar(index, PciBarKind.Memory, start, size, is64, prefetch, region);
            if (is64)
            {
                Claim(bars, index + 1, name);
                bars[index + 1] = new PciBar(index + 1, PciBarKind.Memory64Upper);
            }
        }

        foreach (var name in spec.Bars.Keys)
        {
            if (!device.Mmio.Any(r => r.Name == $"{device.Name} {name}"))
            {
                throw new System.IO.InvalidDataException($"attributes for {name}, which has no MMIO range");
            }
        }

        if (spec.IoBar is { } io)
        {
            if (io.Index > 5 || io.Size < 4 || io.Size > 256 || !BitOperations.IsPow2(io.Size) || (io.Start & (io.Size - 1)) != 0 || io.Start > 0xffff)
            {
                throw new System.IO.InvalidDataException($"I/O BAR{io.Index}: 0x{io.Start:x}+0x{io.Size:x} is not a valid port range");
            }

            Claim(bars, (int)io.Index, $"I/O BAR{io.Index}");
            bars[io.Index] = new PciBar((int)io.Index, PciBarKind.Io, io.Start, io.Size);
        }

        if (spec.Rom is { } rom && (rom.Size < 2048 || !BitOperations.IsPow2(rom.Size) || (rom.Start & (rom.Size - 1)) != 0 || rom.Start + (rom.Size - 1) > uint.MaxValue))
        {
            throw new System.IO.InvalidDataException($"ROM: 0x{rom.Start:x}+0x{rom.Size:x} is not a valid ROM BAR");
        }

        if (spec.Msix is { } msix)
        {
            var pbaBar = msix.PbaBar ?? msix.TableBar;
            if (msix.Vectors is 0 or > 2048 || msix.TableBar > 5 || pbaBar > 5
                || bars[msix.TableBar] is not { IsMemory: true } tableBar || bars[pbaBar] is not { IsMemory: true } pba
                || (msix.TableOffset & 7) != 0 || msix.TableOffset + (msix.Vectors * 16) > tableBar.Size
                || (msix.PbaOffset is { } po && ((po & 7) != 0 || po + ((msix.Vectors + 63) / 64 * 8) > pba.Size)))
            {
                throw new System.IO.InvalidDataException("MSI-X: the table or PBA does not fit a memory BAR");
            }
        }

        if (spec.Msi is { } msi && (msi.Vectors is 0 or > 32 || !BitOperations.IsPow2(msi.Vectors)))
        {
            throw new System.IO.InvalidDataException($"MSI: {msi.Vectors} vectors (1, 2, 4, 8, 16 or 32)");
        }

        if (spec.VendorId > 0xffff || spec.DeviceId > 0xffff || spec.ClassCode > 0xffffff || spec.Revision > 0xff
            || spec.SubsystemVendorId > 0xffff || spec.SubsystemId > 0xffff)
        {
            throw new System.IO.InvalidDataException("an ID does not fit its register (16-bit IDs, 24-bit class code, 8-bit revision)");
        }

        if (spec.InterruptPin > 4)
        {
            throw new System.IO.InvalidDataException($"interrupt pin {spec.InterruptPin} (0..4)");
        }

        var result = new PciBar[6];
        for (var i = 0; i < 6; i++)
        {
            result[i] = bars[i] ?? new PciBar(i, PciBarKind.None);
        }

        return result;

        static void Claim(PciBar?[] bars, int index, string what)
        {
            if (bars[index] is not null)
            {
                throw new System.IO.InvalidDataException($"{what}: BAR register {index} is taken");
            }
        }
    }

    // The type 0 header and the capability list (PM, MSI, MSI-X, PCIe, in that order from 0x40),
    // with power-on values captured before the "firmware" assigns the BARs.
    private void BuildConfig(bool multiFunction)
    {
        var c = Config;
        var s = Spec;
        c.SetWord((int)PciConfigOffset.VendorId, (ushort)s.VendorId);
        c.SetWord((int)PciConfigOffset.DeviceId, (ushort)s.DeviceId);
        c.SetWritableWord((int)PciConfigOffset.Command, 0x07ff);
        c.SetByte((int)PciConfigOffset.RevisionId, (byte)s.Revision);
        c.SetByte((int)PciConfigOffset.ClassProg, unchecked((byte)s.ClassCode));
        c.SetWord((int)PciConfigOffset.ClassDevice, (ushort)(s.ClassCode >> 8));
        c.SetWritableByte((int)PciConfigOffset.CacheLineSize, 0xff);
        c.SetWritableByte((int)PciConfigOffset.LatencyTimer, 0xff);
        c.SetByte((int)PciConfigOffset.HeaderType, multiFunction ? (byte)0x80 : (byte)0);
        c.SetWord((int)PciConfigOffset.SubsystemVendorId, (ushort)(s.SubsystemVendorId ?? s.VendorId));
        c.SetWord((int)PciConfigOffset.SubsystemId, (ushort)s.SubsystemId);
        c.SetWritableByte((int)PciConfigOffset.InterruptLine, 0xff);
        c.SetByte((int)PciConfigOffset.InterruptPin, (byte)InterruptPin);

        foreach (var bar in _bars)
        {
            var at = (int)PciConfigOffset.BaseAddress0 + (4 * bar.Index);
            switch (bar.Kind)
            {
                case PciBarKind.Io:
                    c.SetDword(at, bar.RegisterFlags);
                    c.SetWritableDword(at, unchecked((uint)~(bar.Size - 1)) & ~(uint)PciBarBits.IoFlagsMask);
                    break;
                case PciBarKind.Memory:
                    var mask = ~(bar.Size - 1);
                    c.SetDword(at, bar.RegisterFlags);
                    c.SetWritableDword(at, unchecked((uint)mask) & ~(uint)PciBarBits.MemFlagsMask);
                    if (bar.Is64Bit)
                    {
                        c.SetWritableDword(at + 4, (uint)(mask >> 32));
                    }

                    break;
            }
        }

        if (Rom is { } rom)
        {
            c.SetWritableDword((int)PciConfigOffset.RomAddress, (unchecked((uint)~(rom.Size - 1)) & 0xfffff800) | (uint)PciBarBits.RomEnable);
        }

        var caps = new List<(PciCapId Id, int Size)>();
        if (s.Pm is not null)
        {
            caps.Add((PciCapId.Pm, (int)PciPmOffset.SizeOf));
        }

        if (s.Msi is { } msi)
        {
            caps.Add((PciCapId.Msi, (msi.Is64Bit ? 14 : 10) + (msi.PerVectorMask ? 10 : 0)));
        }

        if (s.Msix is not null)
        {
            caps.Add((PciCapId.Msix, (int)PciMsixOffset.SizeOf));
        }

        if (s.Pcie is not null)
        {
            caps.Add((PciCapId.Exp, (int)PciExpOffset.SizeOf));
        }

        var pos = (int)PciConfigOffset.HeaderSize;
        var prevNext = (int)PciConfigOffset.CapabilityList;
        foreach (var (id, size) in caps)
        {
            c.SetByte(prevNext, (byte)pos);
            c.SetByte(pos + (int)PciCapOffset.Id, (byte)id);
            prevNext = pos + (int)PciCapOffset.Next;
            BuildCapability(id, pos);
            pos += (size + 3) & ~3;
        }

        if (caps.Count != 0)
        {
            c.SetWord((int)PciConfigOffset.Status, (ushort)PciStatus.CapList);
        }

        c.CaptureResetValue();

        // What firmware does at enumeration: assign every BAR and the ROM, route the INTx line.
        foreach (var bar in _bars.Where(b => b.Kind is PciBarKind.Memory or PciBarKind.Io))
        {
            var at = (int)PciConfigOffset.BaseAddress0 + (4 * bar.Index);
            c.WriteDword(at, unchecked((uint)bar.Start));
            if (bar.Is64Bit)
            {
                c.WriteDword(at + 4, (uint)(bar.Start >> 32));
            }
        }

        if (Rom is not null)
        {
            c.WriteDword((int)PciConfigOffset.RomAddress, (uint)Rom.Start);
        }

        c.Write((int)PciConfigOffset.InterruptLine, [unchecked((byte)_intxIrq)]);
    }

    private void BuildCapability(PciCapId id, int pos)
    {
        var c = Config;
        var s = Spec;
        switch (id)
        {
            case PciCapId.Pm:
                PmCap = pos;
                c.SetWord(pos + (int)PciPmOffset.Pmc, 0x0003);
                c.SetWord(pos + (int)PciPmOffset.Ctrl, s.Pm!.NoSoftReset ? (ushort)PciPmCtrl.NoSoftReset : (ushort)0);
                c.SetWritableWord(pos + (int)PciPmOffset.Ctrl, (ushort)PciPmCtrl.StateMask);
                break;

            case PciCapId.Msi:
            {
                MsiCap = pos;
                var msi = s.Msi!;
                var flags = (ushort)(BitOperations.Log2((uint)msi.Vectors) << 1);
                flags |= msi.Is64Bit ? (ushort)PciMsiFlags.Is64Bit : (ushort)0;
                flags |= msi.PerVectorMask ? (ushort)PciMsiFlags.MaskBit : (ushort)0;
                c.SetWord(pos + (int)PciMsiOffset.Flags, flags);
                c.SetWritableWord(pos + (int)PciMsiOffset.Flags, (ushort)(PciMsiFlags.Enable | PciMsiFlags.QSize));
                c.SetWritableDword(pos + (int)PciMsiOffset.AddressLo, 0xfffffffc);
                var dataAt = pos + (int)(msi.Is64Bit ? PciMsiOffset.Data64 : PciMsiOffset.Data32);
                if (msi.Is64Bit)
                {
                    c.SetWritableDword(pos + (int)PciMsiOffset.AddressHi, 0xffffffff);
                }

                c.SetWritableWord(dataAt, 0xffff);
                if (msi.PerVectorMask)
                {
                    c.SetWritableDword(dataAt + 4, (uint)((1UL << (int)msi.Vectors) - 1));
                }

                break;
            }

            case PciCapId.Msix:
            {
                MsixCap = pos;
                var msix = s.Msix!;
                var pbaOffset = msix.PbaOffset ?? ((msix.TableOffset + (msix.Vectors * 16) + 7) & ~7UL);
                c.SetWord(pos + (int)PciMsixOffset.Flags, (ushort)(msix.Vectors - 1));
                c.SetWritableWord(pos + (int)PciMsixOffset.Flags, (ushort)(PciMsixFlags.Enable | PciMsixFlags.MaskAll));
                c.SetDword(pos + (int)PciMsixOffset.Table, (uint)msix.TableOffset | (uint)msix.TableBar);
                c.SetDword(pos + (int)PciMsixOffset.Pba, (uint)pbaOffset | (uint)(msix.PbaBar ?? msix.TableBar));
                break;
            }

            case PciCapId.Exp:
                ExpCap = pos;
                c.SetWord(pos + (int)PciExpOffset.Flags, 0x0002);
                c.SetDword(pos + (int)PciExpOffset.DevCap, s.Pcie!.Flr ? (uint)PciExpDevCap.Flr : 0);
                c.SetWritableWord(pos + (int)PciExpOffset.DevCtl, 0xffff);
                break;
        }
    }
}
