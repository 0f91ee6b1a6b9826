using System.Buffers.Binary;
using KernelModel.Mm;

namespace KernelModel.Pci.Msix;

/// <summary>Offsets inside an MSI-X table entry (PCI_MSIX_ENTRY_*).</summary>
public enum MsixEntryOffset
{
    /// <summary>PCI_MSIX_ENTRY_LOWER_ADDR.</summary>
    LowerAddress = 0,
    /// <summary>PCI_MSIX_ENTRY_UPPER_ADDR.</summary>
    UpperAddress = 4,
    /// <summary>PCI_MSIX_ENTRY_DATA.</summary>
    Data = 8,
    /// <summary>PCI_MSIX_ENTRY_VECTOR_CTRL.</summary>
    VectorControl = 12,
    /// <summary>PCI_MSIX_ENTRY_SIZE.</summary>
    Size = 16,
}

/// <summary>PCI_MSIX_ENTRY_VECTOR_CTRL bits.</summary>
[Flags]
public enum MsixVectorControl : uint
{
    /// <summary>Unmasked.</summary>
    None = 0,
    /// <summary>PCI_MSIX_ENTRY_CTRL_MASKBIT.</summary>
    Masked = 1,
}

/// <summary>One MSI-X table entry: where the message goes, what it says, and whether it is masked.</summary>
public readonly record struct MsixEntry(ulong Address, uint Data, bool Masked);

/// <summary>
/// The MSI-X table and pending bit array of a function. Both live in BAR memory, so whoever can
/// write the BAR (the host, or a user who mmapped the page holding the table) programs the
/// messages; the device reads an entry each time it raises that vector.
/// </summary>
public sealed class MsixTable
{
    internal MsixTable(MmioRegion tableRegion, int tableBar, ulong tableOffset, MmioRegion pbaRegion, int pbaBar, ulong pbaOffset, int vectors)
    {
        TableRegion = tableRegion;
        TableBar = tableBar;
        TableOffset = tableOffset;
        PbaRegion = pbaRegion;
        PbaBar = pbaBar;
        PbaOffset = pbaOffset;
        Vectors = vectors;
    }

    /// <summary>The BAR memory holding the table.</summary>
    public MmioRegion TableRegion { get; }

    /// <summary>The table's BAR index (BIR).</summary>
    public int TableBar { get; }

    /// <summary>The table's offset in its BAR.</summary>
    public ulong TableOffset { get; }

    /// <summary>The BAR memory holding the PBA.</summary>
    public MmioRegion PbaRegion { get; }

    /// <summary>The PBA's BAR index.</summary>
    public int PbaBar { get; }

    /// <summary>The PBA's offset in its BAR.</summary>
    public ulong PbaOffset { get; }

    /// <summary>The table size in entries.</summary>
    public int Vectors { get; }

    /// <summary>The table size in bytes.</summary>
    public ulong TableSize => (ulong)Vectors * (ulong)MsixEntryOffset.Size;

    /// <summary>The PBA size in bytes (one bit per vector, in qwords).</summary>
    public ulong PbaSize => (ulong)((Vectors + 63) / 64 * 8);

    /// <summary>Reads entry <paramref name="vector"/>.</summary>
    public MsixEntry Read(int vector)
    {
        Span<byte> e = stackalloc byte[(int)MsixEntryOffset.Size];
        TableRegion.Read(EntryOffset(vector), e);
        var address = BinaryPrimitives.ReadUInt32LittleEndian(e) | ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(e[4..]) << 32);
        var ctrl = (MsixVectorControl)BinaryPrimitives.ReadUInt32LittleEndian(e[(int)MsixEntryOffset.VectorControl..]);
        return new MsixEntry(address, BinaryPrimitives.ReadUInt32LittleEndian(e[(int)MsixEntryOffset.Data..]), (ctrl & MsixVectorControl.Masked) != 0);
    }

    /// <summary>Writes entry <paramref name="vector"/>.</summary>
    public void Write(int vector, MsixEntry entry)
    {
        Span<byte> e = stackalloc byte[(int)MsixEntryOffset.Size];
        BinaryPrimitives.WriteUInt32LittleEndian(e, (uint)entry.Address);
        BinaryPrimitives.WriteUInt32LittleEndian(e[4..], (uint)(entry.Address >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(e[(int)MsixEntryOffset.Data..], entry.Data);
        BinaryPrimitives.WriteUInt32LittleEndian(e[(int)MsixEntryOffset.VectorControl..], entry.Masked ? (uint)MsixVectorControl.Masked : 0);
        TableRegion.Write(EntryOffset(vector), e);
    }

    /// <summary>Whether vector <paramref name="vector"/>'s pending bit is set.</summary>
    public bool IsPending(int vector)
    {
        Span<byte> b = stackalloc byte[1];
        PbaRegion.Read(PbaOffset + (ulong)(vector / 8), b);
        return (b[0] & (1 << (vector % 8))) != 0;
    }

    /// <summary>Sets or clears vector <paramref name="vector"/>'s pending bit.</summary>
    public void SetPending(int vector, bool pending)
    {
        Span<byte> b = stackalloc byte[1];
        var at = PbaOffset + (ulong)(vector / 8);
        PbaRegion.Read(at, b);
        b[0] = pending ? (byte)(b[0] | (1 << (vector % 8))) : (byte)(b[0] & ~(1 << (vector % 8)));
        PbaRegion.Write(at, b);
    }

    /// <summary>Reset: every entry masked with no message, nothing pending.</summary>
    public void Reset()
    {
        for (var v = 0; v < Vectors; v++)
        {
            Write(v, new MsixEntry(0, 0, Masked: true));
        }

        PbaRegion.Write(PbaOffset, new byte[PbaSize]);
    }

    private ulong EntryOffset(int vector)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(vector);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(vector, Vectors);
        return TableOffset + ((ulong)vector * (ulong)MsixEntryOffset.Size);
    }
}
