using KernelModel.Kernel;

namespace KernelModel.Mm;

/// <summary>Transparent huge page policy (/sys/kernel/mm/transparent_hugepage/enabled).</summary>
public enum ThpMode
{
    /// <summary>THP for VMAs with MADV_HUGEPAGE only.</summary>
    Madvise,
    /// <summary>THP wherever a PMD-sized, aligned range fits.</summary>
    Always,
    /// <summary>No THP.</summary>
    Never,
}

/// <summary>
/// A process address space (struct mm_struct): VMAs, the CPU page table, RLIMIT_MEMLOCK and
/// locked_vm.
/// <para>Lock order: <see cref="MmapLock"/> → a driver's locks taken in its fault handler
/// (e.g. vfio-pci's memory_lock) → the page-table lock. Zapping (unmap_mapping_range) takes only
/// the page-table lock, so a driver may zap while holding its own lock for write.</para>
/// </summary>
public sealed class MmStruct
{
    private readonly List<Vma> _vmas = [];
    private readonly Lock _ptl = new();
    private readonly ulong _mmapBase;
    private long _lockedVm;

    internal MmStruct(PhysicalMemory phys, ThpMode thp)
    {
        Phys = phys;
        Thp = thp;
        PageTable = new PageTable(phys.Geometry);
        TaskSize = 1UL << (phys.Geometry.VaBits - 1);
        _mmapBase = TaskSize - (1UL << 30);
    }

    /// <summary>mmap_lock: read for faults and GUP, write for changes to the VMA list.</summary>
    public ReaderWriterLockSlim MmapLock { get; } = new(LockRecursionPolicy.SupportsRecursion);

    /// <summary>The physical memory behind the address space.</summary>
    public PhysicalMemory Phys { get; }

    /// <summary>The paging geometry.</summary>
    public PageGeometry Geometry => Phys.Geometry;

    /// <summary>The THP policy in force.</summary>
    public ThpMode Thp { get; }

    /// <summary>TASK_SIZE: the first address user space cannot map.</summary>
    public ulong TaskSize { get; }

    /// <summary>RLIMIT_MEMLOCK in bytes (ulong.MaxValue for unlimited).</summary>
    public ulong MemlockLimit { get; set; } = 8UL << 20;

    /// <summary>Whether the owning task has CAP_IPC_LOCK.</summary>
    public bool CapIpcLock { get; set; }

    /// <summary>locked_vm, in pages.</summary>
    public long LockedVm => Interlocked.Read(ref _lockedVm);

    /// <summary>Pages mapped by present page-table leaves (RSS, counting a huge leaf as its pages).</summary>
    public long RssPages { get; private set; }

    /// <summary>Entries zapped so far (for tests that check a zap reached the page table).</summary>
    public long ZappedEntries { get; private set; }

    internal PageTable PageTable { get; }

    /// <summary>The VMAs, by address (a snapshot).</summary>
    public IReadOnlyList<Vma> Vmas
    {
        get
        {
            MmapLock.EnterReadLock();
            try
            {
                return [.. _vmas];
            }
            finally
            {
                MmapLock.ExitReadLock();
            }
        }
    }

    /// <summary>find_vma() restricted to a hit: the VMA containing <paramref name="addr"/>, or null.</summary>
    public Vma? FindVma(ulong addr)
    {
        int lo = 0, hi = _vmas.Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var v = _vmas[mid];
            if (addr < v.Start)
            {
                hi = mid - 1;
            }
            else if (addr >= v.End)
            {
                lo = mid + 1;
            }
            else
            {
                return v;
            }
        }

        return null;
    }

    /// <summary>
    /// Like __account_locked_vm(): adds or removes <paramref name="npages"/> from locked_vm. Adding
    /// beyond RLIMIT_MEMLOCK without CAP_IPC_LOCK fails with ENOMEM and changes nothing.
    /// </summary>
    public KResult AccountLockedVm(long npages, bool increment)
    {
        if (npages < 0)
        {
            return Errno.EINVAL;
        }

        if (!increment)
        {
            Interlocked.Add(ref _lockedVm, -npages);
            return KResult.Ok;
        }

        while (true)
        {
            var locked = Interlocked.Read(ref _lockedVm);
            if (!MemlockAllows(npages, locked))
            {
                return Errno.ENOMEM;
            }

            if (Interlocked.CompareExchange(ref _lockedVm, locked + npages, locked) == locked)
            {
                return KResult.Ok;
            }
        }
    }

    // Whether locked + npages stays within RLIMIT_MEMLOCK, or the task has CAP_IPC_LOCK.
    private bool MemlockAllows(long npages, long locked)
    {
        var limitPages = MemlockLimit == ulong.MaxValue ? long.MaxValue : (long)(MemlockLimit >> Geometry.PageShift);
        return CapIpcLock || (npages <= limitPages && locked <= limitPages - npages);
    }

    // ---------------------------------------------------------------- mmap

    /// <summary>do_mmap(): the new mapping's address, or an errno with nothing changed.</summary>
    internal KResult<ulong> Mmap(ulong addr, ulong length, Prot prot, MapFlags flags, File? file, ulong offset)
    {
        var g = Geometry;
        if (length == 0 || (prot & ~(Prot.Read | Prot.Write | Prot.Exec)) != 0)
        {
            return Errno.EINVAL;
        }

        if (!g.IsPageAligned(offset))
        {
            return Errno.EINVAL;
        }

        var type = flags & MapFlags.SharedValidate;
        if (type == MapFlags.None)
        {
            return Errno.EINVAL;
        }

        var shared = type != MapFlags.Private;
        var anonymous = (flags & MapFlags.Anonymous) != 0;
        if (!anonymous && file is null)
        {
            return Errno.EBADF;
        }

        var hugeShift = 0;
        if ((flags & MapFlags.HugeTlb) != 0)
        {
            if (!anonymous)
            {
                return Errno.EINVAL;
            }

            var encoded = ((int)flags >> 26) & 0x3f;
            hugeShift = encoded == 0 ? g.PmdShift : encoded;
            if (hugeShift != g.PmdShift && hugeShift != g.PudShift)
            {
                return Errno.EINVAL;
            }
        }

        var align = hugeShift != 0 ? 1UL << hugeShift : g.PageSize;
        if (length > ulong.MaxValue - (align - 1))
        {
            return Errno.ENOMEM;
        }

        length = (length + align - 1) & ~(align - 1);
        if (length > TaskSize)
        {
            return Errno.ENOMEM;
        }

        var pgoff = offset >> g.PageShift;
        if (pgoff > ulong.MaxValue - (length >> g.PageShift))
        {
            return Errno.EOVERFLOW;
        }

        var vmFlags = ProtToVmFlags(prot) | VmFlags.MayRead | VmFlags.MayWrite | VmFlags.MayExec;
        if (shared)
        {
            vmFlags |= VmFlags.Shared | VmFlags.MayShare;
        }

        if (hugeShift != 0)
        {
            vmFlags |= VmFlags.HugeTlb;
        }

        var locked = (flags & MapFlags.Locked) != 0;
        if (locked)
        {
            // can_do_mlock(), as do_mmap() checks it for MAP_LOCKED.
            if (MemlockLimit == 0 && !CapIpcLock)
            {
                return Errno.EPERM;
            }

            vmFlags |= VmFlags.Locked;
        }

        MmapLock.EnterWriteLock();
        try
        {
            var fixedAddr = (flags & (MapFlags.Fixed | MapFlags.FixedNoReplace)) != 0;
            ulong start;
            if (fixedAddr)
            {
                if ((addr & (align - 1)) != 0 || addr > TaskSize - length)
                {
                    return Errno.EINVAL;
                }

                if ((flags & MapFlags.FixedNoReplace) != 0 && Overlapping(addr, addr + length).Any())
                {
                    return Errno.EEXIST;
                }

                start = addr;
            }
            else if (!TryGetUnmappedArea(addr, length, PreferredAlignment(length, align), out start))
            {
                return Errno.ENOMEM;
            }

            // Like mlock_future_ok(): MAP_LOCKED beyond the limit is EAGAIN.
            if (locked && !AccountLockedVm((long)(length >> g.PageShift), increment: true).IsOk)
            {
                return Errno.EAGAIN;
            }

            if (fixedAddr)
            {
                var unmapped = UnmapLocked(start, length);
                if (!unmapped.IsOk)
                {
                    UndoLockedAccount(locked, length);
                    return unmapped.Error;
                }
            }

            var vma = new Vma(this, start, start + length, vmFlags, anonymous && !shared ? start >> g.PageShift : pgoff)
            {
                HugetlbShift = hugeShift,
            };

            if (anonymous && shared)
            {
                // Like shmem_zero_setup(): shared anonymous memory is a shmem file.
                var shmem = ShmemFile.Create(Phys);
                vma.File = shmem;
                vma.PgOff = 0;
                vma.Operations = ShmemVmOperations.Instance;
            }
            else if (!anonymous)
            {
                vma.File = file!.Get();
                var result = file.Operations.Mmap(file, vma);
                if (!result.IsOk)
                {
                    file.Put();
                    UndoLockedAccount(locked, length);
                    return result.Error;
                }
            }

            if (locked && NeverMlocked(vma))
            {
                // As mmap_region(): VM_LOCKED is dropped (and not counted) for hugetlb and for
                // what the driver's mmap made VM_SPECIAL.
                vma.Flags &= ~VmFlags.Locked;
                UndoLockedAccount(locked, length);
            }

            Insert(vma);
            vma.File?.Mapping.Link(vma);

            if ((flags & MapFlags.Populate) != 0 || locked)
            {
                // MAP_POPULATE errors do not fail the mmap, as in Linux.
                Populate(vma, vma.Start, vma.End);
            }

            return start;
        }
        finally
        {
            MmapLock.ExitWriteLock();
        }
    }

    private void UndoLockedAccount(bool locked, ulong length)
    {
        if (locked)
        {
            AccountLockedVm((long)(length >> Geometry.PageShift), increment: false);
        }
    }

    private static VmFlags ProtToVmFlags(Prot prot) =>
        ((prot & Prot.Read) != 0 ? VmFlags.Read : 0)
        | ((prot & Prot.Write) != 0 ? VmFlags.Write : 0)
        | ((prot & Prot.Exec) != 0 ? VmFlags.Exec : 0);

    // Large mappings get the largest leaf alignment that fits them (thp_get_unmapped_area), so
    // THP, hugetlb and huge pfnmap faults can use PMD and PUD entries.
    private ulong PreferredAlignment(ulong length, ulong minimum)
    {
        var g = Geometry;
        var align = minimum;
        if (g.PudSize != 0 && length >= g.PudSize)
        {
            align = Math.Max(align, g.PudSize);
        }
        else if (length >= g.PmdSize)
        {
            align = Math.Max(align, g.PmdSize);
        }

        return align;
    }

    private IEnumerable<Vma> Overlapping(ulong start, ulong end) => _vmas.Where(v => v.Start < end && start < v.End);

    // A top-down search below mmap_base, like the default x86_64 layout; the hint is honoured when free.
    private bool TryGetUnmappedArea(ulong hint, ulong length, ulong align, out ulong start)
    {
        var pageSize = Geometry.PageSize;
        if (hint != 0 && (hint & (align - 1)) == 0 && hint <= TaskSize - length && !Overlapping(hint, hint + length).Any())
        {
            start = hint;
            return true;
        }

        var top = _mmapBase;
        for (var i = _vmas.Count; i >= 0; i--)
        {
            var gapEnd = i == _vmas.Count ? top : Math.Min(top, _vmas[i].Start);
            var gapStart = i == 0 ? pageSize * 16 : _vmas[i - 1].End;
            if (gapEnd > gapStart && gapEnd - gapStart >= length)
            {
                var candidate = (gapEnd - length) & ~(align - 1);
                if (candidate >= gapStart)
                {
                    start = candidate;
                    return true;
                }
            }
        }

        start = 0;
        return false;
    }

    private void Insert(Vma vma)
    {
        var at = _vmas.FindIndex(v => v.Start > vma.Start);
        _vmas.Insert(at < 0 ? _vmas.Count : at, vma);
    }

    private void Populate(Vma vma, ulong start, ulong end)
    {
        // Like __mm_populate(), which skips VM_IO/VM_PFNMAP VMAs (their driver maps on fault), and
        // populate_vma_page_range(), where GUP refuses a PROT_NONE VMA.
        if (vma.IsPfnMap || (vma.Flags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) == 0)
        {
            return;
        }

        var write = (vma.Flags & VmFlags.Write) != 0;
        var addr = start;
        while (addr < end)
        {
            if (!PageTable.TryLookup(addr, out _, out var level))
            {
                if (HandleMmFault(vma, addr, write) != VmFaultResult.None)
                {
                    return;
                }

                PageTable.TryLookup(addr, out _, out level);
            }

            var step = 1UL << PageTable.LevelShift(level);
            addr = (addr & ~(step - 1)) + step;
        }
    }

    // ---------------------------------------------------------------- munmap, mprotect, madvise, mlock

    /// <summary>munmap(): removes every mapping in the range, splitting VMAs at its ends.</summary>
    internal KResult Munmap(ulong addr, ulong length)
    {
        if (!Geometry.IsPageAligned(addr) || length == 0 || !Geometry.TryPageAlignUp(length, out length)
            || addr > TaskSize || length > TaskSize - addr)
        {
            return Errno.EINVAL;
        }

        MmapLock.EnterWriteLock();
        try
        {
            return UnmapLocked(addr, length);
        }
        finally
        {
            MmapLock.ExitWriteLock();
        }
    }

    private KResult UnmapLocked(ulong addr, ulong length)
    {
        var end = addr + length;
        var victims = Overlapping(addr, end).ToList();
        if (!HugetlbMaySplit(victims, addr, end))
        {
            return Errno.EINVAL;
        }

        foreach (var target in IsolateRange(victims, addr, end))
        {
            RemoveVma(target);
        }

        return KResult.Ok;
    }

    // Like hugetlb_vm_op_split() (may_split, checked by __split_vma()): a hugetlb VMA splits only
    // on a huge page boundary. Checked before anything changes, so a refused call changes nothing.
    private static bool HugetlbMaySplit(List<Vma> vmas, ulong start, ulong end)
    {
        foreach (var v in vmas)
        {
            if (v.HugetlbShift != 0)
            {
                var mask = (1UL << v.HugetlbShift) - 1;
                if ((v.Start < start && (start & mask) != 0) || (v.End > end && (end & mask) != 0))
                {
                    return false;
                }
            }
        }

        return true;
    }

    // Splits vma at addr; returns the upper part (the lower part keeps the original object).
    private Vma SplitVma(Vma vma, ulong addr)
    {
        SplitLeavesAt(addr);
        var upper = new Vma(this, addr, vma.End, vma.Flags, vma.PgOff + ((addr - vma.Start) >> Geometry.PageShift))
        {
            File = vma.File?.Get(),
            Operations = vma.Operations,
            PrivateData = vma.PrivateData,
            HugetlbShift = vma.HugetlbShift,
        };
        vma.End = addr;
        Insert(upper);
        upper.File?.Mapping.Link(upper);
        upper.Operations?.Open(upper);
        return upper;
    }

    private void RemoveVma(Vma vma)
    {
        ZapVmaRange(vma, vma.Start, vma.End);
        _vmas.Remove(vma);
        if ((vma.Flags & VmFlags.Locked) != 0)
        {
            AccountLockedVm((long)(vma.Length >> Geometry.PageShift), increment: false);
        }

        vma.IsDetached = true;
        vma.Operations?.Close(vma);
        if (vma.File is { } file)
        {
            file.Mapping.Unlink(vma);
            file.Put();
        }
    }

    /// <summary>Process exit: every VMA goes, as exit_mmap().</summary>
    internal void Teardown()
    {
        MmapLock.EnterWriteLock();
        try
        {
            foreach (var vma in _vmas.ToList())
            {
                RemoveVma(vma);
            }
        }
        finally
        {
            MmapLock.ExitWriteLock();
        }
    }

    /// <summary>mprotect(): ENOMEM on a hole, EACCES when a VMA may not gain the protection.</summary>
    internal KResult Mprotect(ulong addr, ulong length, Prot prot)
    {
        if (!Geometry.IsPageAligned(addr) || (prot & ~(Prot.Read | Prot.Write | Prot.Exec)) != 0)
        {
            return Errno.EINVAL;
        }

        if (length == 0)
        {
            return KResult.Ok;
        }

        if (!Geometry.TryPageAlignUp(length, out length) || addr > TaskSize || length > TaskSize - addr)
        {
            return Errno.ENOMEM;
        }

        var newFlags = ProtToVmFlags(prot);
        MmapLock.EnterWriteLock();
        try
        {
            var end = addr + length;
            var vmas = RequireCovered(addr, end);
            if (vmas is null)
            {
                return Errno.ENOMEM;
            }

            if ((newFlags & VmFlags.Write) != 0 && vmas.Any(v => (v.Flags & VmFlags.MayWrite) == 0))
            {
                return Errno.EACCES;
            }

            if (!HugetlbMaySplit(vmas, addr, end))
            {
                return Errno.EINVAL;
            }

            foreach (var v in IsolateRange(vmas, addr, end))
            {
                v.Flags = (v.Flags & ~(VmFlags.Read | VmFlags.Write | VmFlags.Exec)) | newFlags;
                // Like change_protection(): present entries take the new protection; write is
                // granted again only by a write fault, and PROT_NONE hides them from user space.
                var none = PteProtFlags(v) & PteFlags.ProtNone;
                var clear = (newFlags & VmFlags.Write) == 0 ? PteFlags.Write | PteFlags.ProtNone : PteFlags.ProtNone;
                lock (_ptl)
                {
                    PageTable.ForEachLeaf(v.Start, v.End, (ulong _, int _, ref Pte pte) => pte.Flags = (pte.Flags & ~clear) | none);
                }
            }

            return KResult.Ok;
        }
        finally
        {
            MmapLock.ExitWriteLock();
        }
    }

    /// <summary>madvise() for the advice the model knows; EINVAL for others.</summary>
    internal KResult Madvise(ulong addr, ulong length, Madvise advice)
    {
        if (!Geometry.IsPageAligned(addr) || advice is not (KernelModel.Madvise.Normal or KernelModel.Madvise.DontNeed
            or KernelModel.Madvise.HugePage or KernelModel.Madvise.NoHugePage))
        {
            return Errno.EINVAL;
        }

        if (length == 0)
        {
            return KResult.Ok;
        }

        if (!Geometry.TryPageAlignUp(length, out length) || addr > TaskSize || length > TaskSize - addr)
        {
            return Errno.EINVAL;
        }

        MmapLock.EnterWriteLock();
        try
        {
            var end = addr + length;
            var vmas = RequireCovered(addr, end);
            if (vmas is null)
            {
                return Errno.ENOMEM;
            }

            if (advice == KernelModel.Madvise.DontNeed)
            {
                // Like madvise_dontneed_free_valid_vma(): not for locked or pfnmap VMAs; in a hugetlb
                // VMA the start must be huge-page aligned and the end is aligned down.
                if (vmas.Any(v => (v.Flags & (VmFlags.Locked | VmFlags.PfnMap)) != 0
                    || (v.HugetlbShift != 0 && (Math.Max(v.Start, addr) & ((1UL << v.HugetlbShift) - 1)) != 0)))
                {
                    return Errno.EINVAL;
                }

                foreach (var v in vmas)
                {
                    var zapEnd = Math.Min(v.End, end);
                    if (v.HugetlbShift != 0)
                    {
                        zapEnd &= ~((1UL << v.HugetlbShift) - 1);
                    }

                    ZapVmaRange(v, Math.Max(v.Start, addr), zapEnd);
                }

                return KResult.Ok;
            }

            if (!HugetlbMaySplit(vmas, addr, end))
            {
                return Errno.EINVAL;
            }

            foreach (var v in IsolateRange(vmas, addr, end))
            {
                v.Flags = advice switch
                {
                    KernelModel.Madvise.HugePage => (v.Flags | VmFlags.HugePage) & ~VmFlags.NoHugePage,
                    KernelModel.Madvise.NoHugePage => (v.Flags | VmFlags.NoHugePage) & ~VmFlags.HugePage,
                    _ => v.Flags,
                };
            }

            return KResult.Ok;
        }
        finally
        {
            MmapLock.ExitWriteLock();
        }
    }

    /// <summary>mlock(): ENOMEM beyond RLIMIT_MEMLOCK (without CAP_IPC_LOCK) or on a hole; nothing kept on failure.</summary>
    internal KResult Mlock(ulong addr, ulong length, bool lockIt)
    {
        // Like can_do_mlock(): a zero RLIMIT_MEMLOCK without CAP_IPC_LOCK may not lock at all.
        if (lockIt && MemlockLimit == 0 && !CapIpcLock)
        {
            return Errno.EPERM;
        }

        var start = addr & ~(Geometry.PageSize - 1);
        if (addr - start > ulong.MaxValue - length || !Geometry.TryPageAlignUp(length + (addr - start), out length))
        {
            return Errno.ENOMEM;
        }

        // apply_vma_lock_flags(): a range that wraps is EINVAL; one past TASK_SIZE has no VMA (ENOMEM).
        if (length > ulong.MaxValue - start)
        {
            return Errno.EINVAL;
        }

        if (start > TaskSize || length > TaskSize - start)
        {
            return Errno.ENOMEM;
        }

        if (length == 0)
        {
            return KResult.Ok;
        }

        MmapLock.EnterWriteLock();
        try
        {
            var end = start + length;
            var vmas = RequireCovered(start, end);
            if (vmas is null)
            {
                return Errno.ENOMEM;
            }

            // As do_mlock(): the whole range counts against the limit, less what is already locked
            // in it; but, as mlock_fixup(), hugetlb and VM_SPECIAL VMAs are neither flagged nor
            // counted in locked_vm (nor split).
            long unlocked = 0;
            long delta = 0;
            var changing = new List<Vma>(vmas.Count);
            foreach (var v in vmas)
            {
                var overlap = (long)((Math.Min(v.End, end) - Math.Max(v.Start, start)) >> Geometry.PageShift);
                var isLocked = (v.Flags & VmFlags.Locked) != 0;
                unlocked += isLocked ? 0 : overlap;
                if (isLocked != lockIt && !NeverMlocked(v))
                {
                    delta += overlap;
                    changing.Add(v);
                }
            }

            if (lockIt && !MemlockAllows(unlocked, LockedVm))
            {
                return Errno.ENOMEM;
            }

            var account = AccountLockedVm(delta, lockIt);
            if (!account.IsOk)
            {
                return account;
            }

            foreach (var v in IsolateRange(changing, start, end))
            {
                v.Flags = lockIt ? v.Flags | VmFlags.Locked : v.Flags & ~VmFlags.Locked;
            }

            if (lockIt)
            {
                // __mm_populate(): hugetlb included, VM_IO/VM_PFNMAP skipped (see Populate).
                foreach (var v in Overlapping(start, end).ToList())
                {
                    Populate(v, Math.Max(v.Start, start), Math.Min(v.End, end));
                }
            }

            return KResult.Ok;
        }
        finally
        {
            MmapLock.ExitWriteLock();
        }
    }

    // VMAs that mlock and MAP_LOCKED leave unlocked: hugetlb and VM_SPECIAL (pfnmap, I/O).
    private static bool NeverMlocked(Vma vma) =>
        vma.HugetlbShift != 0 || (vma.Flags & (VmFlags.Io | VmFlags.PfnMap | VmFlags.DontExpand)) != 0;

    // The VMAs that cover [start, end) completely, or null if there is a hole.
    private List<Vma>? RequireCovered(ulong start, ulong end)
    {
        var vmas = Overlapping(start, end).ToList();
        var cursor = start;
        foreach (var v in vmas)
        {
            if (v.Start > cursor)
            {
                return null;
            }

            cursor = v.End;
        }

        return cursor >= end ? vmas : null;
    }

    // Splits the given VMAs so that exactly [start, end) is covered by whole VMAs, and returns those.
    private List<Vma> IsolateRange(List<Vma> vmas, ulong start, ulong end)
    {
        var result = new List<Vma>(vmas.Count);
        foreach (var v in vmas)
        {
            var target = v;
            if (target.Start < start)
            {
                target = SplitVma(target, start);
            }

            if (target.End > end)
            {
                SplitVma(target, end);
            }

            result.Add(target);
        }

        return result;
    }

    // ---------------------------------------------------------------- page table changes

    /// <summary>
    /// zap_page_range_single(): clears every leaf of <paramref name="vma"/> in [start, end), splitting
    /// huge leaves that straddle the ends, and drops the folio references the leaves held.
    /// </summary>
    internal void ZapVmaRange(Vma vma, ulong start, ulong end)
    {
        start = Math.Max(start, vma.Start);
        end = Math.Min(end, vma.End);
        if (start >= end)
        {
            return;
        }

        List<Folio>? toFree = null;
        lock (_ptl)
        {
            SplitLeavesAt(start);
            SplitLeavesAt(end);
            var shiftOf = new[] { PageTable.LevelShift(0), PageTable.LevelShift(1), PageTable.LevelShift(2) };
            var pageShift = Geometry.PageShift;
            PageTable.ForEachLeaf(start, end, (ulong _, int level, ref Pte pte) =>
            {
                RssPages -= 1L << (shiftOf[level] - pageShift);
                ZappedEntries++;
                if (pte.Folio is { } folio && folio.PutRefs(1))
                {
                    (toFree ??= []).Add(folio);
                }

                pte = default;
            });
        }

        if (toFree is not null)
        {
            foreach (var folio in toFree)
            {
                Phys.FreeFolio(folio);
            }
        }
    }

    // Like split_huge_pmd()/split_huge_pud(): a huge leaf that straddles addr becomes leaves one
    // level down mapping the same pfns; each new leaf holds its own folio reference.
    private void SplitLeavesAt(ulong addr)
    {
        lock (_ptl)
        {
            while (PageTable.TryLookup(addr, out var pte, out var level) && level > 0
                   && (addr & ((1UL << PageTable.LevelShift(level)) - 1)) != 0)
            {
                var baseVa = addr & ~((1UL << PageTable.LevelShift(level)) - 1);
                PageTable.Clear(baseVa, level);
                var childShift = PageTable.LevelShift(level - 1);
                var n = 1UL << (PageTable.LevelShift(level) - childShift);
                var pfnStep = 1UL << (childShift - Geometry.PageShift);
                for (ulong i = 0; i < n; i++)
                {
                    PageTable.Set(baseVa + (i << childShift), level - 1, new Pte
                    {
                        Pfn = pte.Pfn + (i * pfnStep),
                        Folio = pte.Folio,
                        Flags = pte.Flags,
                    });
                }

                pte.Folio?.GetRefs((long)n - 1);
            }
        }
    }

    internal KResult InsertPfn(Vma vma, ulong addr, Pfn pfn, int level)
    {
        var size = 1UL << PageTable.LevelShift(level);
        if (!vma.IsPfnMap || (addr & (size - 1)) != 0 || addr < vma.Start || addr > vma.End - size)
        {
            return Errno.EINVAL;
        }

        lock (_ptl)
        {
            if (!PageTable.IsBlockEmpty(addr, level))
            {
                return Errno.EBUSY;
            }

            PageTable.Set(addr, level, new Pte
            {
                Pfn = pfn.Value,
                Flags = PteFlags.Special | PteProtFlags(vma),
            });
            RssPages += (long)(size >> Geometry.PageShift);
        }

        return KResult.Ok;
    }

    internal KResult InsertPfnOrder(Vma vma, ulong addr, Pfn pfn, int order)
    {
        var level = order == Geometry.PmdOrder ? 1 : order == Geometry.PudOrder && Geometry.PudShift != 0 ? 2 : -1;
        if (level < 0 || (pfn.Value & ((1UL << order) - 1)) != 0)
        {
            return Errno.EINVAL;
        }

        return InsertPfn(vma, addr, pfn, level);
    }

    internal KResult RemapPfnRange(Vma vma, ulong addr, Pfn pfn, ulong size)
    {
        if (!Geometry.IsPageAligned(addr) || !Geometry.IsPageAligned(size) || addr < vma.Start || size > vma.End - addr)
        {
            return Errno.EINVAL;
        }

        vma.Flags |= VmFlags.Io | VmFlags.PfnMap | VmFlags.DontExpand | VmFlags.DontDump;
        var end = addr + size;
        var va = addr;
        var p = pfn.Value;
        while (va < end)
        {
            var level = 0;
            for (var l = Geometry.PudShift != 0 ? 2 : 1; l > 0; l--)
            {
                var leaf = 1UL << PageTable.LevelShift(l);
                var pfnMask = (leaf >> Geometry.PageShift) - 1;
                if ((va & (leaf - 1)) == 0 && end - va >= leaf && (p & pfnMask) == 0)
                {
                    level = l;
                    break;
                }
            }

            var result = InsertPfn(vma, va, new Pfn(p), level);
            if (!result.IsOk)
            {
                ZapVmaRange(vma, addr, va);
                return result;
            }

            var step = 1UL << PageTable.LevelShift(level);
            va += step;
            p += step >> Geometry.PageShift;
        }

        return KResult.Ok;
    }

    // ---------------------------------------------------------------- faults

    /// <summary>
    /// handle_mm_fault(): makes the page at <paramref name="addr"/> present. The caller has checked
    /// that the VMA allows the access.
    /// </summary>
    internal VmFaultResult HandleMmFault(Vma vma, ulong addr, bool write)
    {
        var g = Geometry;
        addr &= ~(g.PageSize - 1);
        lock (_ptl)
        {
            if (PageTable.TryLookup(addr, out var existing, out var existingLevel))
            {
                if (write && !existing.Writable)
                {
                    if ((vma.Flags & VmFlags.Write) == 0)
                    {
                        return VmFaultResult.SigSegv;
                    }

                    PageTable.UpdateFlags(addr & ~((1UL << PageTable.LevelShift(existingLevel)) - 1), existingLevel, PteFlags.Write | PteFlags.Dirty, 0);
                }

                return VmFaultResult.None;
            }
        }

        if (vma.HugetlbShift != 0)
        {
            return HugetlbFault(vma, addr);
        }

        if (vma.Operations is { } ops)
        {
            return FileFault(vma, ops, addr, write);
        }

        return AnonymousFault(vma, addr);
    }

    private VmFaultResult HugetlbFault(Vma vma, ulong addr)
    {
        var level = vma.HugetlbShift == Geometry.PmdShift ? 1 : 2;
        var size = 1UL << vma.HugetlbShift;
        var folio = Phys.AllocFolio(vma.HugetlbShift - Geometry.PageShift, FolioFlags.Hugetlb);
        if (folio is null)
        {
            // An exhausted hugetlb pool is a SIGBUS at fault time.
            return VmFaultResult.SigBus;
        }

        Phys.ZeroFolio(folio);
        MapFolio(vma, addr & ~(size - 1), level, folio, folio.Head);
        return VmFaultResult.None;
    }

    private VmFaultResult AnonymousFault(Vma vma, ulong addr)
    {
        var g = Geometry;
        var pmdBase = addr & ~(g.PmdSize - 1);
        var thp = Thp == ThpMode.Always || (Thp == ThpMode.Madvise && (vma.Flags & VmFlags.HugePage) != 0);
        if (thp && (vma.Flags & VmFlags.NoHugePage) == 0 && pmdBase >= vma.Start && vma.End - pmdBase >= g.PmdSize)
        {
            bool empty;
            lock (_ptl)
            {
                empty = PageTable.IsBlockEmpty(pmdBase, 1);
            }

            if (empty && Phys.AllocFolio(g.PmdOrder, FolioFlags.Anon | FolioFlags.TransHuge) is { } huge)
            {
                Phys.ZeroFolio(huge);
                MapFolio(vma, pmdBase, 1, huge, huge.Head);
                return VmFaultResult.None;
            }
        }

        var folio = Phys.AllocFolio(0, FolioFlags.Anon);
        if (folio is null)
        {
            return VmFaultResult.Oom;
        }

        Phys.ZeroFolio(folio);
        MapFolio(vma, addr, 0, folio, folio.Head);
        return VmFaultResult.None;
    }

    private VmFaultResult FileFault(Vma vma, VmOperations ops, ulong addr, bool write)
    {
        var g = Geometry;
        // Try the largest leaf first, as the core does for VMAs whose ops have huge_fault.
        for (var level = g.PudShift != 0 ? 2 : 1; level > 0; level--)
        {
            var size = 1UL << PageTable.LevelShift(level);
            var blockBase = addr & ~(size - 1);
            if (blockBase < vma.Start || vma.End - blockBase < size)
            {
                continue;
            }

            bool empty;
            lock (_ptl)
            {
                empty = PageTable.IsBlockEmpty(blockBase, level);
            }

            if (!empty)
            {
                continue;
            }

            var huge = ops.HugeFault(new VmFault(vma, blockBase, write), PageTable.LevelShift(level) - g.PageShift);
            if (huge != VmFaultResult.Fallback)
            {
                return huge == VmFaultResult.NoPage ? VmFaultResult.None : huge;
            }
        }

        var vmf = new VmFault(vma, addr, write);
        var result = ops.Fault(vmf);
        if (result == VmFaultResult.NoPage)
        {
            return VmFaultResult.None;
        }

        if (result != VmFaultResult.None)
        {
            return result;
        }

        if (vmf.Folio is not { } folio)
        {
            return VmFaultResult.SigBus;
        }

        var pfn = folio.Head + (vmf.PgOff & (folio.NrPages - 1));
        folio.GetRefs(1);
        MapFolio(vma, addr, 0, folio, pfn);
        return VmFaultResult.None;
    }

    private void MapFolio(Vma vma, ulong addr, int level, Folio folio, Pfn pfn)
    {
        lock (_ptl)
        {
            PageTable.Set(addr, level, new Pte
            {
                Pfn = pfn.Value,
                Folio = folio,
                Flags = PteProtFlags(vma),
            });
            RssPages += 1L << (PageTable.LevelShift(level) - Geometry.PageShift);
        }
    }

    /// <summary>
    /// A user-mode access fault at <paramref name="addr"/>: checks the VMA and its permissions,
    /// then handles the fault. SigSegv for a hole or a forbidden access.
    /// </summary>
    internal VmFaultResult UserFault(ulong addr, bool write)
    {
        MmapLock.EnterReadLock();
        try
        {
            var vma = FindVma(addr);
            if (vma is null || !AccessAllowed(vma, write))
            {
                return VmFaultResult.SigSegv;
            }

            return HandleMmFault(vma, addr, write);
        }
        finally
        {
            MmapLock.ExitReadLock();
        }
    }

    // vm_get_page_prot() for the bits the model keeps: writable, or no user access at all.
    private static PteFlags PteProtFlags(Vma vma) =>
        ((vma.Flags & VmFlags.Write) != 0 ? PteFlags.Write : 0)
        | ((vma.Flags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) == 0 ? PteFlags.ProtNone : 0);

    internal static bool AccessAllowed(Vma vma, bool write) =>
        write ? (vma.Flags & VmFlags.Write) != 0 : (vma.Flags & (VmFlags.Read | VmFlags.Write | VmFlags.Exec)) != 0;

    /// <summary>
    /// Translates a user address for a CPU access, faulting as needed: the physical address, or the
    /// fault that stopped it (SigSegv, SigBus, Oom).
    /// </summary>
    internal VmFaultResult TranslateForAccess(ulong addr, bool write, out ulong phys)
    {
        for (var attempt = 0; attempt < 3; attempt++)
        {
            lock (_ptl)
            {
                if (PageTable.TryLookup(addr, out var pte, out var level) && pte.UserAccessible && (!write || pte.Writable))
                {
                    var mask = (1UL << PageTable.LevelShift(level)) - 1;
                    phys = (pte.Pfn << Geometry.PageShift) + (addr & mask);
                    return VmFaultResult.None;
                }
            }

            var fault = UserFault(addr, write);
            if (fault != VmFaultResult.None)
            {
                phys = 0;
                return fault;
            }
        }

        phys = 0;
        return VmFaultResult.SigBus;
    }

    /// <summary>Looks up the leaf mapping <paramref name="addr"/> without faulting.</summary>
    internal bool TryGetPte(ulong addr, out Pte pte, out int level)
    {
        lock (_ptl)
        {
            return PageTable.TryLookup(addr, out pte, out level);
        }
    }

    internal Lock PageTableLock => _ptl;
}
