namespace KernelModel.Mm;

/// <summary>Folio flags (a subset of the page flags this model needs).</summary>
[Flags]
public enum FolioFlags
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>Anonymous memory.</summary>
    Anon = 1,
    /// <summary>A shmem (shared anonymous) page-cache folio.</summary>
    Shmem = 2,
    /// <summary>A hugetlbfs folio.</summary>
    Hugetlb = 4,
    /// <summary>A transparent huge page.</summary>
    TransHuge = 8,
    /// <summary>Written since last cleaned (set by FOLL_WRITE unpin, like unpin_user_pages_dirty_lock).</summary>
    Dirty = 16,
    /// <summary>Kernel-owned, never handed to user space.</summary>
    Reserved = 32,
}

/// <summary>
/// One metadata record for a naturally aligned run of 2^Order pages (struct folio). A huge folio
/// has one record for all its pages, so pinning every page of it is one update here.
/// Counts follow the kernel's rules: a pin adds to both the reference count and the pin count.
/// </summary>
public sealed class Folio
{
    private long _refCount;
    private long _pinCount;

    internal Folio(Pfn head, int order, FolioFlags flags, ulong generation)
    {
        Head = head;
        Order = order;
        Flags = flags;
        Generation = generation;
        _refCount = 1;
    }

    /// <summary>The first pfn.</summary>
    public Pfn Head { get; }

    /// <summary>log2 of the number of pages.</summary>
    public int Order { get; }

    /// <summary>The number of pages.</summary>
    public ulong NrPages => 1UL << Order;

    /// <summary>Flags.</summary>
    public FolioFlags Flags { get; internal set; }

    /// <summary>Allocation generation: differs between two lives of the same physical pages.</summary>
    public ulong Generation { get; }

    /// <summary>folio_ref_count().</summary>
    public long RefCount => Interlocked.Read(ref _refCount);

    /// <summary>
    /// GUP_PIN_COUNTING_BIAS: a small folio records a pin as this many references, so pinning it
    /// is one atomic update; large folios count pins separately (folio->_pincount).
    /// </summary>
    public const long PinCountingBias = 1024;

    /// <summary>
    /// Pages of this folio currently pinned with FOLL_PIN (folio_maybe_dma_pinned when non-zero).
    /// For a small folio it is derived from the reference count, as the kernel does.
    /// </summary>
    public long PinCount => Order == 0 ? RefCount / PinCountingBias : Interlocked.Read(ref _pinCount);

    /// <summary>True once the folio has gone back to the allocator.</summary>
    public bool IsFree { get; internal set; }

    /// <summary>True when <paramref name="pfn"/> lies inside this folio.</summary>
    public bool Contains(Pfn pfn) => pfn >= Head && pfn.Value - Head.Value < NrPages;

    internal void GetRefs(long n) => Interlocked.Add(ref _refCount, n);

    /// <summary>Drops references; true when the count reached zero and the caller must free it.</summary>
    internal bool PutRefs(long n)
    {
        var left = Interlocked.Add(ref _refCount, -n);
        return left switch
        {
            0 => true,
            < 0 => throw new InvalidOperationException($"folio {Head} refcount underflow"),
            _ => false,
        };
    }

    // Like try_grab_folio(FOLL_PIN): a small folio takes GUP_PIN_COUNTING_BIAS references per
    // pin in one atomic add; a large one adds to _pincount and one reference per pin.
    internal void AddPins(long n)
    {
        if (Order == 0)
        {
            Interlocked.Add(ref _refCount, n * PinCountingBias);
            return;
        }

        Interlocked.Add(ref _pinCount, n);
        Interlocked.Add(ref _refCount, n);
    }

    /// <summary>Drops pins and their references (gup_put_folio); true when the folio must be freed.</summary>
    internal bool RemovePins(long n)
    {
        if (Order == 0)
        {
            // One atomic update, as on pin; an unpin without its pin drives the count negative.
            return PutRefs(n * PinCountingBias);
        }

        if (Interlocked.Add(ref _pinCount, -n) < 0)
        {
            throw new InvalidOperationException($"folio {Head} pin count underflow");
        }

        return PutRefs(n);
    }

    /// <inheritdoc />
    public override string ToString() => $"folio {Head} order {Order} ref {RefCount} pin {PinCount}{(IsFree ? " free" : "")}";
}
