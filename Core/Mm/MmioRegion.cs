namespace KernelModel.Mm;

/// <summary>
/// A range of the physical address space that is not RAM: a BAR, a platform register block, an
/// MC portal. Its pfns have no page metadata ("invalid or reserved", as pfn_valid/PageReserved see
/// them). The default backing store is sparse memory, reached by CPU mmaps and peer-to-peer DMA
/// alike; a device model derives to give registers behaviour.
/// </summary>
public class MmioRegion
{
    private readonly SparseStore _store;

    /// <summary>Creates a region. <paramref name="start"/> and <paramref name="size"/> must be page aligned.</summary>
    public MmioRegion(string name, PhysAddr start, ulong size, string owner)
    {
        Name = name;
        Start = start;
        Size = size;
        Owner = owner;
        _store = new SparseStore(4096);
    }

    /// <summary>A name for diagnostics (e.g. "0000:01:00.0 BAR0").</summary>
    public string Name { get; }

    /// <summary>The first physical address.</summary>
    public PhysAddr Start { get; }

    /// <summary>The size in bytes.</summary>
    public ulong Size { get; }

    /// <summary>The name of the device that owns it.</summary>
    public string Owner { get; }

    /// <summary>The last physical address (inclusive).</summary>
    public ulong Last => Start.Value + (Size - 1);

    /// <summary>
    /// Whether DMA into the region is legitimate right now. True for ordinary device memory; the
    /// vfio core clears it while a vfio device's user has released it, so the DMA sanitizer can
    /// report peer-to-peer DMA that outlived its right to the BAR.
    /// </summary>
    public bool DmaHeld { get; set; } = true;

    /// <summary>Accesses that reached the region by CPU or DMA (for tests that count slow paths).</summary>
    public long Accesses { get; private set; }

    /// <summary>True when <paramref name="phys"/> lies inside the region.</summary>
    public bool Contains(ulong phys) => phys >= Start.Value && phys - Start.Value < Size;

    /// <summary>Reads <paramref name="buffer"/>.Length bytes at <paramref name="offset"/> into the region.</summary>
    public void Read(ulong offset, Span<byte> buffer)
    {
        Accesses++;
        OnRead(offset, buffer);
    }

    /// <summary>Writes <paramref name="buffer"/> at <paramref name="offset"/> into the region.</summary>
    public void Write(ulong offset, ReadOnlySpan<byte> buffer)
    {
        Accesses++;
        OnWrite(offset, buffer);
    }

    /// <summary>Device behaviour for reads; the default reads the backing store.</summary>
    protected virtual void OnRead(ulong offset, Span<byte> buffer) => _store.Read(offset, buffer);

    /// <summary>Device behaviour for writes; the default writes the backing store.</summary>
    protected virtual void OnWrite(ulong offset, ReadOnlySpan<byte> buffer) => _store.Write(offset, buffer);

    /// <summary>The backing store itself, for device models that intercept only some registers.</summary>
    protected SparseStore Store => _store;

    /// <inheritdoc />
    public override string ToString() => $"{Name} [0x{Start.Value:x}-0x{Last:x}]";
}

/// <summary>Memory whose contents exist only once written; unwritten bytes read as zero.</summary>
public sealed class SparseStore(int chunkSize)
{
    private readonly Dictionary<ulong, byte[]> _chunks = [];
    private readonly int _chunkSize = chunkSize;

    /// <summary>How many chunks hold data.</summary>
    public int ChunkCount => _chunks.Count;

    /// <summary>Reads bytes at <paramref name="offset"/>.</summary>
    public void Read(ulong offset, Span<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var index = offset / (ulong)_chunkSize;
            var within = (int)(offset % (ulong)_chunkSize);
            var n = Math.Min(buffer.Length, _chunkSize - within);
            if (_chunks.TryGetValue(index, out var chunk))
            {
                chunk.AsSpan(within, n).CopyTo(buffer);
            }
            else
            {
                buffer[..n].Clear();
            }

            buffer = buffer[n..];
            offset += (ulong)n;
        }
    }

    /// <summary>Writes bytes at <paramref name="offset"/>.</summary>
    public void Write(ulong offset, ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var index = offset / (ulong)_chunkSize;
            var within = (int)(offset % (ulong)_chunkSize);
            var n = Math.Min(buffer.Length, _chunkSize - within);
            if (!_chunks.TryGetValue(index, out var chunk))
            {
                chunk = new byte[_chunkSize];
                _chunks[index] = chunk;
            }

            buffer[..n].CopyTo(chunk.AsSpan(within));
            buffer = buffer[n..];
            offset += (ulong)n;
        }
    }

    /// <summary>Forgets the chunks of [<paramref name="offset"/>, +<paramref name="length"/>) (zeroes them).</summary>
    public void Clear(ulong offset, ulong length)
    {
        if (length == 0)
        {
            return;
        }

        var first = offset / (ulong)_chunkSize;
        var last = (offset + length - 1) / (ulong)_chunkSize;
        if ((ulong)_chunks.Count < last - first + 1)
        {
            foreach (var key in _chunks.Keys.Where(k => k >= first && k <= last).ToList())
            {
                _chunks.Remove(key);
            }
        }
        else
        {
            for (var k = first; k <= last; k++)
            {
                _chunks.Remove(k);
            }
        }
    }
}
