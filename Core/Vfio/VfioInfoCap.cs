using System.Buffers.Binary;

namespace KernelModel.Vfio;

/// <summary>
/// A capability chain being built for an info ioctl (struct vfio_info_cap): every bus driver and
/// backend that answers GET_INFO-style ioctls with capabilities needs the same layout, so it lives
/// here once. Each capability starts with struct vfio_info_cap_header (id u16, version u16, next
/// u32) and is padded to 8 bytes; <c>next</c> is the offset of the following capability from the
/// start of the info struct, 0 at the end of the chain.
/// <para>The padding follows current upstream: since Linux 6.6 ("vfio: align capability
/// structures") vfio_info_cap_add() rounds every capability up to 8 bytes, so a 12-byte
/// capability such as type1's DMA_AVAIL no longer leaves the next one 4-byte aligned.</para>
/// </summary>
public sealed class VfioInfoCap
{
    /// <summary>sizeof(struct vfio_info_cap_header).</summary>
    public const int HeaderSize = 8;

    private byte[] _buffer = [];

    /// <summary>The chain's size in bytes (a multiple of 8).</summary>
    public int Size { get; private set; }

    /// <summary>The chain, with <c>next</c> offsets relative to where it was last shifted to.</summary>
    public ReadOnlySpan<byte> Buffer => _buffer.AsSpan(0, Size);

    /// <summary>
    /// Like vfio_info_cap_add(): appends a capability of <paramref name="size"/> bytes (header
    /// included) and links it at the end of the chain; returns its bytes, zeroed but for the
    /// header, for the caller to fill after the header.
    /// </summary>
    public Span<byte> Add(ushort id, ushort version, int size)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(size, HeaderSize);
        var aligned = (size + 7) & ~7;
        var at = Size;
        Array.Resize(ref _buffer, at + aligned);
        var cap = _buffer.AsSpan(at, aligned);
        cap.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(cap, id);
        BinaryPrimitives.WriteUInt16LittleEndian(cap[2..], version);

        // Walk to the last header and link the new one after it (the first needs no link).
        if (at != 0)
        {
            var last = 0;
            while (BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(last + 4)) is var next and not 0)
            {
                last = (int)next;
            }

            BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(last + 4), (uint)at);
        }

        Size = at + aligned;
        return cap[..size];
    }

    /// <summary>
    /// Like vfio_info_add_capability(): appends a whole capability given as bytes whose first 8
    /// are a header (only its id and version are used).
    /// </summary>
    public void Add(ReadOnlySpan<byte> capability)
    {
        var id = BinaryPrimitives.ReadUInt16LittleEndian(capability);
        var version = BinaryPrimitives.ReadUInt16LittleEndian(capability[2..]);
        capability[HeaderSize..].CopyTo(Add(id, version, capability.Length)[HeaderSize..]);
    }

    /// <summary>Appends a whole capability struct; its leading vfio_info_cap_header gives id and version.</summary>
    public void Add<T>(in T capability)
        where T : unmanaged =>
        Add(System.Runtime.InteropServices.MemoryMarshal.AsBytes(new ReadOnlySpan<T>(in capability)));

    /// <summary>
    /// Like vfio_info_cap_shift(): makes every <c>next</c> relative to the info struct the chain
    /// will follow, <paramref name="offset"/> bytes before it (8-byte aligned).
    /// </summary>
    public void Shift(int offset)
    {
        if ((offset & 7) != 0)
        {
            throw new ArgumentException("a capability chain must start 8-byte aligned", nameof(offset));
        }

        if (Size == 0)
        {
            return;
        }

        var at = 0;
        while (BinaryPrimitives.ReadUInt32LittleEndian(_buffer.AsSpan(at + 4)) is var next and not 0)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(_buffer.AsSpan(at + 4), next + (uint)offset);
            at = (int)next;
        }
    }
}
