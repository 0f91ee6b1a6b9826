using System.Buffers.Binary;

namespace KernelModel.Pci.Config;

/// <summary>
/// The configuration space of a function as the hardware implements it: the bytes, and per byte
/// the bits software may change. Read-only bits ignore writes, which is also how BAR sizing works:
/// the low bits of a BAR below its size are not writable, so writing all ones and reading back
/// gives the size mask. Accesses are little endian, as on the bus.
/// </summary>
public sealed class PciConfigSpace
{
    private readonly byte[] _bytes;
    private readonly byte[] _writable;
    private readonly byte[] _resetValue;

    /// <summary>Creates a space of <paramref name="size"/> bytes (256 for PCI, 4096 for PCI Express), all zero and read-only.</summary>
    public PciConfigSpace(int size)
    {
        _bytes = new byte[size];
        _writable = new byte[size];
        _resetValue = new byte[size];
    }

    /// <summary>cfg_size.</summary>
    public int Size => _bytes.Length;

    /// <summary>Reads <paramref name="buffer"/>.Length bytes at <paramref name="offset"/>.</summary>
    public void Read(int offset, Span<byte> buffer) => _bytes.AsSpan(offset, buffer.Length).CopyTo(buffer);

    /// <summary>Writes at <paramref name="offset"/>; only the writable bits change.</summary>
    public void Write(int offset, ReadOnlySpan<byte> buffer)
    {
        for (var i = 0; i < buffer.Length; i++)
        {
            var mask = _writable[offset + i];
            _bytes[offset + i] = (byte)((_bytes[offset + i] & ~mask) | (buffer[i] & mask));
        }
    }

    /// <summary>Reads an 8-bit register.</summary>
    public byte ReadByte(int offset) => _bytes[offset];

    /// <summary>Reads a 16-bit register.</summary>
    public ushort ReadWord(int offset) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan(offset));

    /// <summary>Reads a 32-bit register.</summary>
    public uint ReadDword(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan(offset));

    /// <summary>Writes a 16-bit register through the write mask.</summary>
    public void WriteWord(int offset, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(b, value);
        Write(offset, b);
    }

    /// <summary>Writes a 32-bit register through the write mask.</summary>
    public void WriteDword(int offset, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        Write(offset, b);
    }

    /// <summary>The device itself sets a register, read-only bits included (status, capability contents).</summary>
    public void SetWord(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan(offset), value);

    /// <summary>The device itself sets a register, read-only bits included.</summary>
    public void SetDword(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(_bytes.AsSpan(offset), value);

    /// <summary>The device itself sets a byte, read-only bits included.</summary>
    public void SetByte(int offset, byte value) => _bytes[offset] = value;

    /// <summary>Declares which bits of a 16-bit register software may write.</summary>
    public void SetWritableWord(int offset, ushort mask) => BinaryPrimitives.WriteUInt16LittleEndian(_writable.AsSpan(offset), mask);

    /// <summary>Declares which bits of a 32-bit register software may write.</summary>
    public void SetWritableDword(int offset, uint mask) => BinaryPrimitives.WriteUInt32LittleEndian(_writable.AsSpan(offset), mask);

    /// <summary>Declares which bits of a byte software may write.</summary>
    public void SetWritableByte(int offset, byte mask) => _writable[offset] = mask;

    /// <summary>Records the current contents as the power-on value a reset returns to.</summary>
    public void CaptureResetValue() => _bytes.CopyTo(_resetValue, 0);

    /// <summary>A conventional or function level reset: every register returns to its power-on value.</summary>
    public void Reset() => _resetValue.CopyTo(_bytes, 0);

    /// <summary>A copy of the whole space (pci_save_state).</summary>
    public byte[] Snapshot() => (byte[])_bytes.Clone();

    /// <summary>Writes a snapshot back through the write masks (pci_restore_state).</summary>
    public void Restore(ReadOnlySpan<byte> snapshot) => Write(0, snapshot);
}
