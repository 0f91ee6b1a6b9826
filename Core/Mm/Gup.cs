using KernelModel.Kernel;

namespace KernelModel.Mm;

/// <summary>A run of physically contiguous page frames.</summary>
public readonly record struct PfnRun(Pfn Start, ulong Count)
{
    /// <summary>The pfn after the run.</summary>
    public Pfn End => Start + Count;
}

/// <summary>What <see cref="Gup.FollowPfnmap"/> found: the pfn behind an address of a VM_PFNMAP VMA.</summary>
public readonly record struct PfnmapEntry(Pfn Pfn, bool Writable, ulong PagesToLeafEnd);

/// <summary>
/// get_user_pages and friends: pinning user memory for DMA, and the pfnmap lookups that stand in
/// for it where there are no struct pages.
/// </summary>
public static class Gup
{
    /// <summary>
    /// pin_user_pages(): pins up to <paramref name="nrPages"/> pages from <paramref name="start"/>,
    /// faulting them in, and writes the pinned pfns as runs of contiguous frames into
    /// <paramref name="runs"/>. A huge folio is pinned with one update to its record. Returns the
    /// number of pages pinned (fewer than asked when a later page fails or <paramref name="runs"/>
    /// fills), or an errno when not even the first page could be pinned: EFAULT for a hole, a
    /// VM_IO/VM_PFNMAP VMA (check_vma_flags) or FOLL_WRITE on a read-only mapping.
    /// </summary>
    public static KResult<long> PinUserPages(MmStruct mm, ulong start, long nrPages, FollFlags flags, Span<PfnRun> runs, out int nrRuns)
    {
        nrRuns = 0;
        if (nrPages <= 0 || !mm.Geometry.IsPageAligned(start) || runs.IsEmpty)
        {
            return Errno.EINVAL;
        }

        var write = (flags & FollFlags.Write) != 0;
        var pageShift = mm.Geometry.PageShift;
        long pinned = 0;
        var addr = start;
        var error = Errno.None;

        mm.MmapLock.EnterReadLock();
        try
        {
            Vma? vma = null;
            while (pinned < nrPages)
            {
                if (vma is null || !vma.Contains(addr))
                {
                    vma = mm.FindVma(addr);
                    error = CheckVmaFlags(vma, write);
                    if (error != Errno.None)
                    {
                        break;
                    }
                }

                var batch = PinBasePageBatch(mm, addr, Math.Min((long)((vma!.End - addr) >> pageShift), nrPages - pinned), write, runs, ref nrRuns);
                if (batch > 0)
                {
                    pinned += batch;
                    addr += (ulong)batch << pageShift;
                    continue;
                }

                if (!mm.TryGetPte(addr, out var pte, out var level) || (write && !pte.Writable))
                {
                    if ((flags & FollFlags.NoFault) != 0)
                    {
                        error = Errno.EFAULT;
                        break;
                    }

                    error = FaultToErrno(mm.HandleMmFault(vma!, addr, write));
                    if (error != Errno.None)
                    {
                        break;
                    }

                    continue;
                }

                if (pte.Folio is not { } folio)
                {
                    error = Errno.EFAULT;
                    break;
                }

                // Everything from addr to the end of this leaf (bounded by the VMA and the request)
                // is one folio: one pin update, one run.
                var leafShift = mm.PageTable.LevelShift(level);
                var leafMask = (1UL << leafShift) - 1;
                var pagesInLeaf = ((1UL << leafShift) - (addr & leafMask)) >> pageShift;
                var pagesInVma = (vma!.End - addr) >> pageShift;
                var n = (long)Math.Min(Math.Min(pagesInLeaf, pagesInVma), (ulong)(nrPages - pinned));
                var pfn = new Pfn(pte.Pfn + ((addr & leafMask) >> pageShift));

                if (nrRuns > 0 && runs[nrRuns - 1].End == pfn)
                {
                    runs[nrRuns - 1] = runs[nrRuns - 1] with { Count = runs[nrRuns - 1].Count + (ulong)n };
                }
                else if (nrRuns < runs.Length)
                {
                    runs[nrRuns++] = new PfnRun(pfn, (ulong)n);
                }
                else
                {
                    break;
                }

                folio.AddPins(n);
                pinned += n;
                addr += (ulong)n << pageShift;
            }
        }
        finally
        {
            mm.MmapLock.ExitReadLock();
        }

        return pinned > 0 ? pinned : error != Errno.None ? error : Errno.EFAULT;
    }

    // The fast path for base pages: walk to the page-table page once and pin its present entries
    // in order under one page-table lock, as the kernel's GUP walks a PTE table under its PTL.
    // Stops at the first entry that needs a fault (or when the runs buffer is full); returns the
    // pages pinned, 0 when addr is not mapped by a base-page entry.
    private static long PinBasePageBatch(MmStruct mm, ulong addr, long maxPages, bool write, Span<PfnRun> runs, ref int nrRuns)
    {
        lock (mm.PageTableLock)
        {
            var table = mm.PageTable.PteTable(addr, out var first);
            if (table is null)
            {
                return 0;
            }

            var end = (int)Math.Min(table.Length, first + maxPages);
            var i = first;
            for (; i < end; i++)
            {
                ref var e = ref table[i];
                if (!e.Present || (write && !e.Writable) || e.Folio is not { } folio)
                {
                    break;
                }

                if (nrRuns > 0 && runs[nrRuns - 1].End.Value == e.Pfn)
                {
                    ref var last = ref runs[nrRuns - 1];
                    last = new PfnRun(last.Start, last.Count + 1);
                }
                else if (nrRuns < runs.Length)
                {
                    runs[nrRuns++] = new PfnRun(new Pfn(e.Pfn), 1);
                }
                else
                {
                    break;
                }

                folio.AddPins(1);
            }

            return i - first;
        }
    }

    // Like check_vma_flags() without FOLL_FORCE: a read pin needs VM_READ itself, not merely an
    // access the CPU would allow (a write-only mapping cannot be pinned for reading).
    private static Errno CheckVmaFlags(Vma? vma, bool write)
    {
        if (vma is null || vma.IsPfnMap)
        {
            return Errno.EFAULT;
        }

        var needed = write ? VmFlags.Write : VmFlags.Read;
        return (vma.Flags & needed) != 0 ? Errno.None : Errno.EFAULT;
    }

    private static Errno FaultToErrno(VmFaultResult fault) => fault switch
    {
        VmFaultResult.None => Errno.None,
        VmFaultResult.Oom => Errno.ENOMEM,
        _ => Errno.EFAULT,
    };

    /// <summary>
    /// unpin_user_pages(_dirty_lock): drops one pin from each page of the run, folio by folio.
    /// A folio whose last reference this was goes back to the allocator.
    /// </summary>
    public static void UnpinPages(PhysicalMemory phys, PfnRun run, bool dirty)
    {
        var pfn = run.Start;
        var left = run.Count;
        while (left > 0)
        {
            // Base pages are the common case and their record sits at their own pfn.
            if (phys.FolioWithHead(pfn.Value) is not { } folio && !phys.TryGetFolio(pfn, out folio))
            {
                throw new InvalidOperationException($"unpin of {pfn}, which has no folio");
            }

            var n = Math.Min(left, folio.NrPages - (pfn - folio.Head));
            if (dirty && (folio.Flags & FolioFlags.Dirty) == 0)
            {
                folio.Flags |= FolioFlags.Dirty;
            }

            if (folio.RemovePins((long)n))
            {
                phys.FreeFolio(folio);
            }

            pfn += n;
            left -= n;
        }
    }

    /// <summary>
    /// follow_pfnmap_start(): the pfn mapped at <paramref name="vaddr"/> of a VM_IO/VM_PFNMAP VMA,
    /// without faulting. EINVAL when the VMA is not pfnmap or nothing is mapped there yet.
    /// </summary>
    public static KResult<PfnmapEntry> FollowPfnmap(MmStruct mm, ulong vaddr)
    {
        var vma = mm.FindVma(vaddr);
        if (vma is null || !vma.IsPfnMap || !mm.TryGetPte(vaddr, out var pte, out var level))
        {
            return Errno.EINVAL;
        }

        var shift = mm.PageTable.LevelShift(level);
        var mask = (1UL << shift) - 1;
        var pageShift = mm.Geometry.PageShift;
        // Count from the page holding vaddr, so an offset within it does not lose that page.
        var page = vaddr & ~(mm.Geometry.PageSize - 1);
        var pfn = new Pfn(pte.Pfn + ((page & mask) >> pageShift));
        var toEnd = Math.Min(((1UL << shift) - (page & mask)) >> pageShift, (vma.End - page) >> pageShift);
        return new PfnmapEntry(pfn, pte.Writable, toEnd);
    }

    /// <summary>
    /// fixup_user_fault(): faults <paramref name="vaddr"/> in as a user access would. EFAULT for a
    /// hole, a forbidden access or a fault that ends in SIGBUS/SIGSEGV; ENOMEM when out of memory.
    /// </summary>
    public static KResult FixupUserFault(MmStruct mm, ulong vaddr, bool write)
    {
        mm.MmapLock.EnterReadLock();
        try
        {
            var vma = mm.FindVma(vaddr);
            if (vma is null || !MmStruct.AccessAllowed(vma, write))
            {
                return Errno.EFAULT;
            }

            var error = FaultToErrno(mm.HandleMmFault(vma, vaddr, write));
            return error == Errno.None ? KResult.Ok : error;
        }
        finally
        {
            mm.MmapLock.ExitReadLock();
        }
    }
}
