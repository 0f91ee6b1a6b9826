using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Pci.Config;

namespace KernelModel.Pci.VfioPci;

/// <summary>
/// The configuration space a vfio-pci user sees (vfio_pci_config.c): a virtual copy (vconfig)
/// plus, per byte, which bits are virtualised (read from and written to the copy) and which are
/// writable. Bits neither virtualised nor writable read the hardware; writable bits that are not
/// virtualised are written through to it. Some registers have handlers on top: BAR reads apply
/// sizing (vfio_bar_fixup), command writes take memory_lock, a PMCSR state write changes the
/// power state, and PCIe DEVCTL's FLR bit resets the function.
/// <para>Lock order: memory_lock → this object's lock (held only around vconfig bytes).</para>
/// </summary>
internal sealed class VfioPciConfig
{
    private const byte AllVirt = 0xff;
    private const byte AllWrite = 0xff;

    private readonly VfioPciDevice _vdev;
    private readonly PciFunction _fn;
    private readonly Lock _lock = new();
    private readonly byte[] _vconfig;
    private readonly byte[] _virt;
    private readonly byte[] _write;
    private readonly Owner[] _owner;
    private readonly int[] _capStart;

    public VfioPciConfig(VfioPciDevice vdev)
    {
        _vdev = vdev;
        _fn = vdev.Function;
        var size = _fn.Config.Size;
        _vconfig = new byte[size];
        _virt = new byte[size];
        _write = new byte[size];
        _owner = new Owner[size];
        _capStart = new int[size];
        _fn.ReadConfig(0, _vconfig);
        InitPermissions();
    }

    private enum Owner : byte
    {
        Unassigned,
        Basic,
        Pm,
        Msi,
        Msix,
        Exp,
    }

    /// <summary>PCI_COMMAND as the user last wrote it (what __vfio_pci_memory_enabled() tests).</summary>
    public PciCommand VirtualCommand
    {
        get
        {
            lock (_lock)
            {
                return (PciCommand)BinaryPrimitives.ReadUInt16LittleEndian(_vconfig.AsSpan((int)PciConfigOffset.Command));
            }
        }
    }

    /// <summary>vfio_pci_config_rw(): aligned chunks of at most 4 bytes. EFAULT outside cfg_size.</summary>
    public long ReadWrite(Span<byte> buffer, ulong pos, bool isWrite)
    {
        if (pos >= (ulong)_fn.Config.Size || (ulong)buffer.Length > (ulong)_fn.Config.Size - pos)
        {
            return -(long)Errno.EFAULT;
        }

        var at = (int)pos;
        var done = 0;
        while (done < buffer.Length)
        {
            var left = buffer.Length - done;
            var count = left >= 4 && at % 4 == 0 ? 4 : left >= 2 && at % 2 == 0 ? 2 : 1;
            var chunk = buffer.Slice(done, count);
            var ret = isWrite ? WriteChunk(at, chunk) : ReadChunk(at, chunk);
            if (!ret.IsOk)
            {
                return -(long)ret.Error;
            }

            done += count;
            at += count;
        }

        return done;
    }

    // ------------------------------------------------------------------ reads

    private KResult ReadChunk(int pos, Span<byte> value)
    {
        switch (_owner[pos])
        {
            case Owner.Unassigned:
                // Raw access: some devices hide registers in the gaps; trust the hardware's isolation.
                return _fn.ReadConfig(pos, value);
            case Owner.Basic when IsBar(pos):
                BarFixup();
                break;
        }

        return DefaultRead(pos, value);
    }

    // vfio_default_config_read(): virtualised bits from vconfig, the rest from the hardware.
    private KResult DefaultRead(int pos, Span<byte> value)
    {
        Span<byte> phys = stackalloc byte[value.Length];
        var read = _fn.ReadConfig(pos, phys);
        if (!read.IsOk)
        {
            return read;
        }

        lock (_lock)
        {
            for (var i = 0; i < value.Length; i++)
            {
                var virt = _virt[pos + i];
                value[i] = (byte)((phys[i] & ~virt) | (_vconfig[pos + i] & virt));
            }
        }

        return KResult.Ok;
    }

    // vfio_bar_fixup(): what sizing hardware would show. A BAR reads back its address bits as the
    // user wrote them, masked to the BAR's size, with the real type bits; an unimplemented BAR
    // (and the upper half of a 64-bit one, through its lower half) reads as the hardware's.
    private void BarFixup()
    {
        lock (_lock)
        {
            for (var i = 0; i < 6; i++)
            {
                var at = (int)PciConfigOffset.BaseAddress0 + (4 * i);
                var bar = _fn.Bars[i];
                if (bar.Kind is PciBarKind.None)
                {
                    SetV32(at, 0);
                    continue;
                }

                if (bar.Kind is PciBarKind.Memory64Upper)
                {
                    continue;
                }

                var mask = ~(bar.Size - 1);
                SetV32(at, (V32(at) & unchecked((uint)mask) & ~(bar.IsIo ? (uint)PciBarBits.IoFlagsMask : (uint)PciBarBits.MemFlagsMask)) | bar.RegisterFlags);
                if (bar.Is64Bit)
                {
                    SetV32(at + 4, V32(at + 4) & (uint)(mask >> 32));
                }
            }

            var rom = (int)PciConfigOffset.RomAddress;
            SetV32(rom, _fn.Rom is { } r ? V32(rom) & ((unchecked((uint)~(r.Size - 1)) & 0xfffff800) | (uint)PciBarBits.RomEnable) : 0);
        }
    }

    // ------------------------------------------------------------------ writes

    private KResult WriteChunk(int pos, Span<byte> value) => _owner[pos] switch
    {
        Owner.Unassigned => _fn.WriteConfig(pos, value),
        Owner.Basic => BasicWrite(pos, value),
        Owner.Pm => PmWrite(pos, value),
        Owner.Exp => ExpWrite(pos, value),
        _ => DefaultWrite(pos, value),
    };

    // vfio_default_config_write(): writable virtualised bits go to vconfig; writable bits that are
    // not virtualised go to the hardware by read-modify-write.
    private KResult DefaultWrite(int pos, ReadOnlySpan<byte> value)
    {
        var toHardware = false;
        lock (_lock)
        {
            for (var i = 0; i < value.Length; i++)
            {
                var virtWrite = (byte)(_write[pos + i] & _virt[pos + i]);
                _vconfig[pos + i] = (byte)((_vconfig[pos + i] & ~virtWrite) | (value[i] & virtWrite));
                toHardware |= (_write[pos + i] & ~_virt[pos + i]) != 0;
            }
        }

        if (!toHardware)
        {
            return KResult.Ok;
        }

        Span<byte> phys = stackalloc byte[value.Length];
        var read = _fn.ReadConfig(pos, phys);
        if (!read.IsOk)
        {
            return read;
        }

        for (var i = 0; i < value.Length; i++)
        {
            var physWrite = (byte)(_write[pos + i] & ~_virt[pos + i]);
            phys[i] = (byte)((phys[i] & ~physWrite) | (value[i] & physWrite));
        }

        return _fn.WriteConfig(pos, phys);
    }

    // vfio_basic_config_write(): a command write holds memory_lock for write around the change of
    // the memory enable bit, and zaps every BAR mmap first when memory is being turned off, so
    // the next touch faults and finds memory disabled (SIGBUS). INTx disable is emulated.
    private KResult BasicWrite(int pos, ReadOnlySpan<byte> value)
    {
        var command = (int)PciConfigOffset.Command;
        var touchesCommand = pos <= command + 1 && pos + value.Length > command;
        if (pos != command)
        {
            var plain = DefaultWrite(pos, value);
            if (touchesCommand)
            {
                EmulateIntxDisable();
            }

            return plain;
        }

        var newCmd = (PciCommand)(value.Length >= 2 ? BinaryPrimitives.ReadUInt16LittleEndian(value) : value[0]);
        var newMem = (newCmd & PciCommand.Memory) != 0;
        if (!newMem)
        {
            _vdev.ZapAndDownWriteMemoryLock();
        }
        else
        {
            _vdev.MemoryLock.DownWrite();
        }

        KResult result;
        try
        {
            result = DefaultWrite(pos, value);
            if (result.IsOk)
            {
                // Remember the user's memory and I/O enable bits in vconfig.
                const ushort mask = (ushort)(PciCommand.Memory | PciCommand.Io);
                lock (_lock)
                {
                    var v = BinaryPrimitives.ReadUInt16LittleEndian(_vconfig.AsSpan(command));
                    v = (ushort)((v & ~mask) | ((ushort)newCmd & mask));
                    BinaryPrimitives.WriteUInt16LittleEndian(_vconfig.AsSpan(command), v);
                }
            }
        }
        finally
        {
            _vdev.MemoryLock.UpWrite();
        }

        if (result.IsOk)
        {
            EmulateIntxDisable();
        }

        return result;
    }

    private void EmulateIntxDisable()
    {
        var disabled = (VirtualCommand & PciCommand.IntxDisable) != 0;
        _vdev.SetVirqDisabled(disabled);
    }

    // vfio_pm_config_write(): the state bits are not writable directly; a write to them is a
    // request to change the power state, done by the driver (D3hot zaps the BAR mmaps first).
    private KResult PmWrite(int pos, ReadOnlySpan<byte> value)
    {
        var result = DefaultWrite(pos, value);
        if (!result.IsOk)
        {
            return result;
        }

        var ctrl = _capStart[pos] + (int)PciPmOffset.Ctrl;
        if (pos <= ctrl && pos + value.Length > ctrl)
        {
            var state = value[ctrl - pos] & (int)PciPmCtrl.StateMask;
            _vdev.LockAndSetPowerState(state);
        }

        return KResult.Ok;
    }

    // vfio_exp_config_write(): the FLR bit is virtualised; if the user sets it and the function
    // has FLR, reset the function with every BAR mmap zapped under memory_lock. It reads as 0.
    private KResult ExpWrite(int pos, ReadOnlySpan<byte> value)
    {
        var result = DefaultWrite(pos, value);
        if (!result.IsOk)
        {
            return result;
        }

        var ctl = _capStart[pos] + (int)PciExpOffset.DevCtl;
        bool flr;
        lock (_lock)
        {
            var v = BinaryPrimitives.ReadUInt16LittleEndian(_vconfig.AsSpan(ctl));
            flr = (v & (ushort)PciExpDevCtl.BcrFlr) != 0;
            BinaryPrimitives.WriteUInt16LittleEndian(_vconfig.AsSpan(ctl), (ushort)(v & ~(ushort)PciExpDevCtl.BcrFlr));
        }

        if (flr && _fn.HasFlr)
        {
            _vdev.ZapAndDownWriteMemoryLock();
            try
            {
                _fn.TryResetFunction();
            }
            finally
            {
                _vdev.MemoryLock.UpWrite();
            }
        }

        return KResult.Ok;
    }

    // ------------------------------------------------------------------ permissions

    private static bool IsBar(int pos) =>
        (pos >= (int)PciConfigOffset.BaseAddress0 && pos < (int)PciConfigOffset.BaseAddress5 + 4)
        || (pos >= (int)PciConfigOffset.RomAddress && pos < (int)PciConfigOffset.RomAddress + 4);

    private void InitPermissions()
    {
        // Like init_pci_cap_basic_perm().
        Own(0, (int)PciConfigOffset.HeaderSize, Owner.Basic);
        SetW((int)PciConfigOffset.VendorId, 0xffff, 0);
        SetW((int)PciConfigOffset.DeviceId, 0xffff, 0);
        SetW((int)PciConfigOffset.Command, (ushort)PciCommand.IntxDisable, 0xffff);
        SetW((int)PciConfigOffset.Status, (ushort)PciStatus.CapList, 0);
        SetB((int)PciConfigOffset.CacheLineSize, 0, AllWrite);
        SetB((int)PciConfigOffset.LatencyTimer, 0, AllWrite);
        SetB((int)PciConfigOffset.Bist, 0, AllWrite);
        for (var bar = (int)PciConfigOffset.BaseAddress0; bar <= (int)PciConfigOffset.BaseAddress5; bar += 4)
        {
            SetD(bar, 0xffffffff, 0xffffffff);
        }

        SetD((int)PciConfigOffset.RomAddress, 0xffffffff, 0xffffffff);
        SetB((int)PciConfigOffset.CapabilityList, AllVirt, 0);
        SetB((int)PciConfigOffset.InterruptLine, AllVirt, AllWrite);
        SetB((int)PciConfigOffset.InterruptPin, AllVirt, 0);

        if (_fn.PmCap is var pm and not 0)
        {
            // Like init_pci_cap_pm_perm(): the state bits are trapped, not written through.
            Own(pm, (int)PciPmOffset.SizeOf, Owner.Pm);
            SetB(pm + (int)PciCapOffset.Next, AllVirt, 0);
            SetD(pm + (int)PciPmOffset.Ctrl, 0, ~(uint)PciPmCtrl.StateMask);
        }

        if (_fn.MsiCap is var msi and not 0)
        {
            // The MSI capability is virtualised: the host programs the real one through SET_IRQS.
            var flags = _fn.ReadConfigWord(msi + (int)PciMsiOffset.Flags);
            var len = ((flags & (ushort)PciMsiFlags.Is64Bit) != 0 ? 14 : 10) + ((flags & (ushort)PciMsiFlags.MaskBit) != 0 ? 10 : 0);
            Own(msi, len, Owner.Msi);
            for (var i = 0; i < len; i++)
            {
                _virt[msi + i] = AllVirt;
                _write[msi + i] = i >= (int)PciMsiOffset.AddressLo ? AllWrite : (byte)0;
            }

            SetW(msi + (int)PciMsiOffset.Flags, 0xffff, (ushort)(PciMsiFlags.Enable | PciMsiFlags.QSize));
        }

        if (_fn.MsixCap is var msix and not 0)
        {
            // Read only: MSI-X is configured through SET_IRQS.
            Own(msix, (int)PciMsixOffset.SizeOf, Owner.Msix);
            SetB(msix + (int)PciCapOffset.Next, AllVirt, 0);
        }

        if (_fn.ExpCap is var exp and not 0)
        {
            // Like init_pci_cap_exp_perm(): device control is writable, FLR virtualised.
            Own(exp, (int)PciExpOffset.SizeOf, Owner.Exp);
            SetB(exp + (int)PciCapOffset.Next, AllVirt, 0);
            SetW(exp + (int)PciExpOffset.DevCtl, (ushort)PciExpDevCtl.BcrFlr, 0xffff);
        }
    }

    private void Own(int start, int length, Owner owner)
    {
        for (var i = start; i < start + ((length + 3) & ~3); i++)
        {
            _owner[i] = owner;
            _capStart[i] = start;
        }
    }

    private void SetB(int at, byte virt, byte write)
    {
        _virt[at] = virt;
        _write[at] = write;
    }

    private void SetW(int at, ushort virt, ushort write)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_virt.AsSpan(at), virt);
        BinaryPrimitives.WriteUInt16LittleEndian(_write.AsSpan(at), write);
    }

    private void SetD(int at, uint virt, uint write)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_virt.AsSpan(at), virt);
        BinaryPrimitives.WriteUInt32LittleEndian(_write.AsSpan(at), write);
    }

    private uint V32(int at) => BinaryPrimitives.ReadUInt32LittleEndian(_vconfig.AsSpan(at));

    private void SetV32(int at, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_vconfig.AsSpan(at), value);
}
