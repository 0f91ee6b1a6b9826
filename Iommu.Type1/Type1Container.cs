using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Vfio;
using Microsoft.Extensions.ObjectPool;

namespace KernelModel.Iommu.Type1;

/// <summary>
/// The per-container state of the type1 backend (struct vfio_iommu): its domains with their
/// groups, the user's DMA mappings, and the ioctls on them.
/// </summary>
/// <remarks>
/// <para>Lock order: <c>_lock</c> (iommu->lock) → the caller's mmap_lock (read) → a domain's own
/// lock. Nothing that can call back into the vfio core (notifier unregistration, device puts,
/// container-user puts) runs under <c>_lock</c>: those go to the system workqueue.</para>
/// </remarks>
internal sealed class Type1Container : IVfioIommuContainer
{
    private static readonly ObjectPool<PfnRun[]> s_runBuffers =
        new DefaultObjectPool<PfnRun[]>(new RunBufferPolicy(), Environment.ProcessorCount * 2);

    private readonly VfioIommuContext _context;
    private readonly Machine _machine;
    private readonly Lock _lock = new();
    private readonly List<DomainEntry> _domains = [];
    private readonly List<VfioDma> _dmas = [];   // sorted by Iova, never overlapping
    private int _dmaAvail;
    private int _vaddrInvalidCount;
    private bool _dirtyTracking;
    private bool _released;

    public Type1Container(VfioIommuContext context, bool v2)
    {
        _context = context;
        _machine = context.Machine;
        V2 = v2;
        _dmaAvail = _machine.Settings.DmaEntryLimit;
    }

    /// <summary>VFIO_TYPE1v2_IOMMU semantics (no partial unmaps of a mapping).</summary>
    public bool V2 { get; }

    private PageGeometry Geometry => _machine.Geometry;

    // ================================================================ extensions

    /// <summary>
    /// Like vfio_iommu_type1_check_extension(). UPDATE_VADDR is answered only with a container
    /// (the model has no emulated groups, so it is then 1); DMA_CC asks whether every domain
    /// enforces cache coherency, which the model's domains always do — so 1, also with none.
    /// </summary>
    public static long CheckExtension(Type1Container? iommu, ulong extension) => extension switch
    {
        Type1Abi.TYPE1_IOMMU or Type1Abi.TYPE1v2_IOMMU or Type1Abi.UNMAP_ALL => 1,
        Type1Abi.UPDATE_VADDR => iommu is null ? 0 : 1,
        Type1Abi.DMA_CC_IOMMU => iommu is null ? 0 : 1,
        _ => 0,
    };

    // ================================================================ ioctl

    /// <inheritdoc />
    public long Ioctl(uint request, IoctlArg arg) => request switch
    {
        Type1Abi.CHECK_EXTENSION => CheckExtension(this, arg.Value),
        Type1Abi.IOMMU_GET_INFO => GetInfo(arg),
        Type1Abi.IOMMU_MAP_DMA => MapDmaIoctl(arg),
        Type1Abi.IOMMU_UNMAP_DMA => UnmapDmaIoctl(arg),
        Type1Abi.IOMMU_DIRTY_PAGES => DirtyPagesIoctl(arg),
        _ => -(long)Errno.ENOTTY,
    };

    // ================================================================ attach / detach / release

    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_attach_group(): refuses a group already here, any attach while some
    /// vaddr is invalidated (attach may need to pin), and a group whose reserved regions would cover
    /// an existing mapping. A compatible existing domain is reused; otherwise a new domain is
    /// allocated and the existing mappings are replayed into it.
    /// </remarks>
    public KResult AttachGroup(IommuGroup group)
    {
        lock (_lock)
        {
            if (_released || _domains.Any(d => d.Groups.Contains(group)) || _vaddrInvalidCount > 0)
            {
                return Errno.EINVAL;
            }

            var candidate = _machine.AllocateDomain();

            // vfio_iommu_aper_conflict() / vfio_iommu_resv_conflict(): existing mappings must stay valid.
            var ranges = ComputeIovaRanges(extraDomain: candidate, extraGroup: group);
            foreach (var dma in _dmas)
            {
                if (dma.Size != 0 && !RangeIsValid(ranges, dma.Iova, dma.Last))
                {
                    return Errno.EINVAL;
                }
            }

            // Every domain of this machine's IOMMU has the same format and page sizes, so like the
            // kernel (which tries iommu_attach_group on each existing domain first) the group joins
            // a compatible domain when there is one.
            foreach (var entry in _domains)
            {
                if (entry.Domain.Format == candidate.Format && entry.Domain.PageSizeBitmap == candidate.PageSizeBitmap)
                {
                    var joined = group.Attach(entry.Domain);
                    if (!joined.IsOk)
                    {
                        return joined;
                    }

                    entry.Groups.Add(group);
                    return KResult.Ok;
                }
            }

            var attached = group.Attach(candidate);
            if (!attached.IsOk)
            {
                return attached;
            }

            var replayed = Replay(candidate);
            if (!replayed.IsOk)
            {
                group.Detach(candidate);
                return replayed;
            }

            _domains.Add(new DomainEntry(candidate, [group]));
            return KResult.Ok;
        }
    }

    /// <inheritdoc />
    /// <remarks>
    /// Like vfio_iommu_type1_detach_group(): the group leaves its domain; an emptied domain goes,
    /// and when it was the last one every mapping is unmapped, unpinned and unaccounted
    /// (vfio_iommu_unmap_unpin_all()).
    /// </remarks>
    public void DetachGroup(IommuGroup group)
    {
        lock (_lock)
        {
            var entry = _domains.FirstOrDefault(d => d.Groups.Contains(group));
            if (entry is null)
            {
                return;
            }

            if (entry.Groups.Count == 1)
            {
                if (_domains.Count == 1)
                {
                    RemoveAllDmas();
                }
                else
                {
                    // iommu_domain_free() drops this domain's page tables; the pins stay tracked
                    // through the remaining domains, so only this domain's IOPTEs go.
                    foreach (var dma in _dmas)
                    {
                        if (dma.Size != 0)
                        {
                            entry.Domain.Unmap(new Iova(dma.Iova), dma.Size);
                        }
                    }

                    _domains.Remove(entry);
                }
            }

            group.Detach(entry.Domain);
            entry.Groups.Remove(group);
            if (entry.Groups.Count == 0)
            {
                _domains.Remove(entry);
            }
        }
    }

    /// <inheritdoc />
    /// <remarks>Like vfio_iommu_type1_release(): every mapping goes, then every domain.</remarks>
    public void Release()
    {
        lock (_lock)
        {
            _released = true;
            RemoveAllDmas();
            foreach (var entry in _domains)
            {
                foreach (var group in entry.Groups)
                {
                    group.Detach(entry.Domain);
                }
            }

            _domains.Clear();
        }
    }

    // Like vfio_iommu_replay(): a new domain gets every existing mapping, translated through the
    // first domain (which holds the pins) so nothing is pinned twice.
    private KResult Replay(IommuDomain target)
    {
        if (_dmas.Count == 0 || _domains.Count == 0)
        {
            return KResult.Ok;
        }

        var source = _domains[0].Domain;
        var pageSize = Geometry.PageSize;
        foreach (var dma in _dmas)
        {
            ulong done = 0;
            while (done < dma.Size)
            {
                var iova = dma.Iova + done;
                if (!source.TryIovaToPhys(new Iova(iova), out var phys))
                {
                    UnmapReplayed(target, dma, done);
                    return Errno.EFAULT;
                }

                // Gather the physically contiguous stretch, page by page.
                ulong n = pageSize;
                while (done + n < dma.Size
                    && source.TryIovaToPhys(new Iova(iova + n), out var next)
                    && next.Value == phys.Value + n)
                {
                    n += pageSize;
                }

                var mapped = target.Map(new Iova(iova), phys, n, dma.Prot);
                if (!mapped.IsOk)
                {
                    UnmapReplayed(target, dma, done);
                    return mapped;
                }

                done += n;
            }
        }

        return KResult.Ok;

        void UnmapReplayed(IommuDomain domain, VfioDma failedAt, ulong failedDone)
        {
            foreach (var dma in _dmas)
            {
                var size = ReferenceEquals(dma, failedAt) ? failedDone : dma.Size;
                if (size != 0)
                {
                    domain.Unmap(new Iova(dma.Iova), size);
                }

                if (ReferenceEquals(dma, failedAt))
                {
                    break;
                }
            }
        }
    }

    // ================================================================ GET_INFO

    // Like vfio_iommu_type1_get_info(): flags, page sizes, and a capability chain (MIGRATION,
    // DMA_AVAIL, IOVA_RANGE, in the kernel's order) returned only when argsz has room for all of
    // it; otherwise argsz tells the caller how much to allocate and cap_offset stays 0.
    private long GetInfo(IoctlArg arg)
    {
        var buf = arg.Buffer;
        if (!arg.IsBuffer || buf.Length < Type1Abi.InfoMinSize)
        {
            return -(long)Errno.EFAULT;
        }

        var argsz = BinaryPrimitives.ReadUInt32LittleEndian(buf);
        if (argsz < Type1Abi.InfoMinSize)
        {
            return -(long)Errno.EINVAL;
        }

        var copySize = (int)Math.Min(argsz, (uint)Type1Abi.InfoSize);
        byte[] caps;
        ulong pgsizes;
        lock (_lock)
        {
            pgsizes = PageSizeBitmap();
            caps = BuildInfoCaps(pgsizes);
        }

        var flags = Type1Abi.INFO_PGSIZES;
        uint capOffset = 0;
        if (caps.Length != 0)
        {
            flags |= Type1Abi.INFO_CAPS;
            var needed = (uint)(Type1Abi.InfoSize + caps.Length);
            if (argsz < needed)
            {
                argsz = needed;
            }
            else
            {
                if (buf.Length < needed)
                {
                    return -(long)Errno.EFAULT;
                }

                caps.CopyTo(buf[Type1Abi.InfoSize..]);
                capOffset = Type1Abi.InfoSize;
            }
        }

        if (buf.Length < copySize)
        {
            return -(long)Errno.EFAULT;
        }

        Span<byte> info = stackalloc byte[Type1Abi.InfoSize];
        info.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(info, argsz);
        BinaryPrimitives.WriteUInt32LittleEndian(info[Type1Abi.InfoFlagsOffset..], flags);
        BinaryPrimitives.WriteUInt64LittleEndian(info[Type1Abi.InfoPgsizesOffset..], pgsizes);
        BinaryPrimitives.WriteUInt32LittleEndian(info[Type1Abi.InfoCapOffsetOffset..], capOffset);
        info[..copySize].CopyTo(buf);
        return 0;
    }

    // The chain as it will sit after struct vfio_iommu_type1_info, with absolute next offsets
    // (vfio_info_cap_shift()); each capability padded to 8 bytes as vfio_info_cap_add() does.
    private byte[] BuildInfoCaps(ulong pgsizes)
    {
        var ranges = ComputeIovaRanges(null, null);
        var migration = 32;
        var avail = 16;
        var iova = ranges.Count == 0 ? 0 : 16 + (16 * ranges.Count);
        var caps = new byte[migration + avail + iova];
        var at = 0;

        // vfio_iommu_migration_build_caps(): dirty logging at the smallest page size.
        WriteHeader(caps, at, Type1Abi.CAP_MIGRATION, migration);
        BinaryPrimitives.WriteUInt64LittleEndian(caps.AsSpan(at + 16), pgsizes & (~pgsizes + 1));
        BinaryPrimitives.WriteUInt64LittleEndian(caps.AsSpan(at + 24), Type1Abi.DirtyBitmapSizeMax);
        at += migration;

        // vfio_iommu_dma_avail_build_caps().
        WriteHeader(caps, at, Type1Abi.CAP_DMA_AVAIL, iova == 0 ? 0 : avail);
        BinaryPrimitives.WriteUInt32LittleEndian(caps.AsSpan(at + 8), (uint)Math.Max(0, _dmaAvail));
        at += avail;

        // vfio_iommu_iova_build_caps(): nothing when the list is empty.
        if (iova != 0)
        {
            WriteHeader(caps, at, Type1Abi.CAP_IOVA_RANGE, 0);
            BinaryPrimitives.WriteUInt32LittleEndian(caps.AsSpan(at + 8), (uint)ranges.Count);
            for (var i = 0; i < ranges.Count; i++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(caps.AsSpan(at + 16 + (16 * i)), ranges[i].Start);
                BinaryPrimitives.WriteUInt64LittleEndian(caps.AsSpan(at + 24 + (16 * i)), ranges[i].Last);
            }
        }

        return caps;

        static void WriteHeader(byte[] caps, int at, ushort id, int sizeToNext)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(caps.AsSpan(at), id);
            BinaryPrimitives.WriteUInt16LittleEndian(caps.AsSpan(at + 2), 1);
            var next = sizeToNext == 0 ? 0u : (uint)(Type1Abi.InfoSize + at + sizeToNext);
            BinaryPrimitives.WriteUInt32LittleEndian(caps.AsSpan(at + 4), next);
        }
    }

    // vfio_update_pgsize_bitmap(): the page sizes every domain supports, with sub-PAGE_SIZE sizes
    // folded into PAGE_SIZE. With no domain, every size from PAGE_SIZE up.
    private ulong PageSizeBitmap()
    {
        var bitmap = ~(Geometry.PageSize - 1);
        foreach (var entry in _domains)
        {
            bitmap &= entry.Domain.PageSizeBitmap;
        }

        if ((bitmap & (Geometry.PageSize - 1)) != 0)
        {
            bitmap &= ~(Geometry.PageSize - 1);
            bitmap |= Geometry.PageSize;
        }

        return bitmap;
    }

    private ulong MinPageSize()
    {
        var bitmap = PageSizeBitmap();
        return bitmap & (~bitmap + 1);
    }

    // The iova_list: the intersection of the domains' apertures minus every non-relaxable reserved
    // region of every attached group (vfio_iommu_aper_resize() + vfio_iommu_resv_exclude()).
    private List<(ulong Start, ulong Last)> ComputeIovaRanges(IommuDomain? extraDomain, IommuGroup? extraGroup)
    {
        var domains = _domains.Select(d => d.Domain).ToList();
        if (extraDomain is not null)
        {
            domains.Add(extraDomain);
        }

        var ranges = new List<(ulong Start, ulong Last)>();
        if (domains.Count == 0)
        {
            return ranges;
        }

        var start = domains.Max(d => d.ApertureStart.Value);
        var last = domains.Min(d => d.ApertureEnd.Value);
        if (start > last)
        {
            return ranges;
        }

        ranges.Add((start, last));
        var groups = _domains.SelectMany(d => d.Groups).ToList();
        if (extraGroup is not null)
        {
            groups.Add(extraGroup);
        }

        foreach (var resv in groups.SelectMany(g => g.ReservedRegions))
        {
            if (resv.Type == ReservedRegionType.DirectRelaxable)
            {
                continue;
            }

            var next = new List<(ulong Start, ulong Last)>(ranges.Count + 1);
            foreach (var (s, l) in ranges)
            {
                if (resv.Last.Value < s || resv.Start.Value > l)
                {
                    next.Add((s, l));
                    continue;
                }

                if (resv.Start.Value > s)
                {
                    next.Add((s, resv.Start.Value - 1));
                }

                if (resv.Last.Value < l)
                {
                    next.Add((resv.Last.Value + 1, l));
                }
            }

            ranges = next;
        }

        return ranges;
    }

    // vfio_iommu_iova_dma_valid(): inside one range; anything goes while the list is empty.
    private static bool RangeIsValid(List<(ulong Start, ulong Last)> ranges, ulong start, ulong last) =>
        ranges.Count == 0 || ranges.Any(r => start >= r.Start && last <= r.Last);

    // ================================================================ MAP_DMA

    // Like vfio_iommu_type1_map_dma(): copy in offsetofend(size), then argsz and flags.
    private long MapDmaIoctl(IoctlArg arg)
    {
        var buf = arg.Buffer;
        if (!arg.IsBuffer || buf.Length < Type1Abi.MapMinSize)
        {
            return -(long)Errno.EFAULT;
        }

        var argsz = BinaryPrimitives.ReadUInt32LittleEndian(buf);
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(buf[4..]);
        const uint mask = Type1Abi.MAP_FLAG_READ | Type1Abi.MAP_FLAG_WRITE | Type1Abi.MAP_FLAG_VADDR;
        if (argsz < Type1Abi.MapMinSize || (flags & ~mask) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        var vaddr = BinaryPrimitives.ReadUInt64LittleEndian(buf[Type1Abi.MapVaddrOffset..]);
        var iova = BinaryPrimitives.ReadUInt64LittleEndian(buf[Type1Abi.MapIovaOffset..]);
        var size = BinaryPrimitives.ReadUInt64LittleEndian(buf[Type1Abi.MapSizeOffset..]);
        return DoMap(flags, vaddr, iova, size).ToSyscall();
    }

    /// <summary>
    /// Like vfio_dma_do_map(), in its current upstream order. The top of the IOVA space follows
    /// upstream since Linux 6.18 ("handle DMA map/unmap up to the addressable limit"): the end is
    /// computed as iova + size - 1, so a mapping may end at the last address, and a range that
    /// wraps is EOVERFLOW (not EINVAL as before), which is what the kernel's vfio selftests expect.
    /// </summary>
    private KResult DoMap(uint flags, ulong vaddr, ulong iova, ulong size)
    {
        var setVaddr = (flags & Type1Abi.MAP_FLAG_VADDR) != 0;
        if (size == 0)
        {
            return Errno.EINVAL;
        }

        if (iova > ulong.MaxValue - (size - 1) || vaddr > ulong.MaxValue - (size - 1))
        {
            return Errno.EOVERFLOW;
        }

        var iovaLast = iova + (size - 1);
        var prot = IommuProt.None;
        if ((flags & Type1Abi.MAP_FLAG_WRITE) != 0)
        {
            prot |= IommuProt.Write;
        }

        if ((flags & Type1Abi.MAP_FLAG_READ) != 0)
        {
            prot |= IommuProt.Read;
        }

        if ((prot != IommuProt.None && setVaddr) || (prot == IommuProt.None && !setVaddr))
        {
            return Errno.EINVAL;
        }

        lock (_lock)
        {
            var pgsize = MinPageSize();
            if (((size | iova | vaddr) & (pgsize - 1)) != 0)
            {
                return Errno.EINVAL;
            }

            var existing = FindFirstOverlap(iova, iovaLast);
            if (setVaddr)
            {
                // VFIO_UPDATE_VADDR: only a whole, invalidated mapping takes a new vaddr.
                if (existing is null)
                {
                    return Errno.ENOENT;
                }

                if (!existing.VaddrInvalid || existing.Iova != iova || existing.Size != size)
                {
                    return Errno.EINVAL;
                }

                existing.Vaddr = vaddr;
                existing.VaddrInvalid = false;
                _vaddrInvalidCount--;
                return KResult.Ok;
            }

            if (existing is not null)
            {
                return Errno.EEXIST;
            }

            if (_dmaAvail <= 0)
            {
                return Errno.ENOSPC;
            }

            if (!RangeIsValid(ComputeIovaRanges(null, null), iova, iovaLast))
            {
                return Errno.EINVAL;
            }

            // The pin path only runs for the caller (current->mm).
            if (UserProcess.Current?.Mm is not { } mm)
            {
                return Errno.ENODEV;
            }

            var dma = new VfioDma(iova, vaddr, prot, mm);
            Link(dma);
            _dmaAvail--;

            if (_domains.Count == 0)
            {
                dma.Size = size;
            }
            else
            {
                var mapped = PinMapDma(dma, size);
                if (!mapped.IsOk)
                {
                    RemoveDma(dma);
                    return mapped;
                }
            }

            if (_dirtyTracking)
            {
                dma.DirtyBitmap = NewFullBitmap(dma.Size, pgsize);
            }

            return KResult.Ok;
        }
    }

    /// <summary>
    /// Like vfio_pin_map_dma(): pins the user range in batches (pooled run buffers) and maps each
    /// physically contiguous run into every domain in one step, so the domain picks the largest
    /// pages the run allows. A VM_PFNMAP stretch goes through <see cref="MapPfnmap"/>. On failure
    /// <c>dma.Size</c> covers exactly what was mapped, pinned and accounted.
    /// </summary>
    private KResult PinMapDma(VfioDma dma, ulong size)
    {
        var shift = Geometry.PageShift;
        var foll = FollFlags.LongTerm | ((dma.Prot & IommuProt.Write) != 0 ? FollFlags.Write : FollFlags.None);
        var runs = s_runBuffers.Get();
        try
        {
            while (dma.Size < size)
            {
                var vaddr = dma.Vaddr + dma.Size;
                var npages = (long)((size - dma.Size) >> shift);
                var pinned = Gup.PinUserPages(dma.Mm, vaddr, npages, foll, runs, out var nrRuns);
                if (!pinned.IsOk)
                {
                    if (pinned.Error != Errno.EFAULT)
                    {
                        return pinned.Error;
                    }

                    // vaddr_get_pfns(): GUP refuses VM_IO/VM_PFNMAP; those take the pfnmap path.
                    var viaPfnmap = MapPfnmap(dma, vaddr, size - dma.Size);
                    if (!viaPfnmap.IsOk)
                    {
                        return viaPfnmap;
                    }

                    continue;
                }

                for (var i = 0; i < nrRuns; i++)
                {
                    var run = runs[i];
                    var bytes = run.Count << shift;

                    // vfio_lock_acct(): RLIMIT_MEMLOCK unless CAP_IPC_LOCK (checked by the mm).
                    var accounted = dma.Mm.AccountLockedVm((long)run.Count, increment: true);
                    if (!accounted.IsOk)
                    {
                        UnpinRuns(runs.AsSpan(i, nrRuns - i), dma.Prot);
                        return Errno.ENOMEM;
                    }

                    var mapped = MapAllDomains(dma.Iova + dma.Size, new PhysAddr(run.Start.Value << shift), bytes, dma.Prot);
                    if (!mapped.IsOk)
                    {
                        dma.Mm.AccountLockedVm((long)run.Count, increment: false);
                        UnpinRuns(runs.AsSpan(i, nrRuns - i), dma.Prot);
                        return mapped;
                    }

                    dma.Size += bytes;
                }
            }

            return KResult.Ok;
        }
        finally
        {
            s_runBuffers.Return(runs);
        }
    }

    /// <summary>
    /// The VM_PFNMAP part of vaddr_get_pfns()/follow_fault_pfn(), as the seed RFC (10/10) changes it.
    /// Strict mode: the VMA must be an opted-in vfio device's (the core's VMA → device lookup, which
    /// returns a referenced device); the pfns of the whole stretch come from the driver's
    /// VmaToPfn, never from a page walk; the mapping keeps the device reference and a notifier
    /// registration. Legacy mode: any invalid or reserved pfn found in the page tables, no
    /// reference — what upstream did before. MMIO is neither pinned nor charged to locked_vm.
    /// </summary>
    private KResult MapPfnmap(VfioDma dma, ulong vaddr, ulong remaining)
    {
        var mm = dma.Mm;
        var write = (dma.Prot & IommuProt.Write) != 0;
        mm.MmapLock.EnterReadLock();
        try
        {
            var vma = mm.FindVma(vaddr);
            if (vma is null || vaddr < vma.Start || !vma.IsPfnMap)
            {
                return Errno.EFAULT;
            }

            var length = Math.Min(remaining, vma.End - vaddr);
            if (_machine.Settings.StrictMmioMaps)
            {
                return MapPfnmapStrict(dma, vma, vaddr, length, write);
            }

            return MapPfnmapLegacy(dma, vaddr, length, write);
        }
        finally
        {
            mm.MmapLock.ExitReadLock();
        }
    }

    private KResult MapPfnmapStrict(VfioDma dma, Vma vma, ulong vaddr, ulong length, bool write)
    {
        if (write && (vma.Flags & VmFlags.Write) == 0)
        {
            return Errno.EFAULT;
        }

        // A non-vfio VMA (e.g. /dev/mem) or a device that did not opt in: ENODEV from the core,
        // which the map reports as EFAULT, as for any memory it cannot pin.
        var found = _context.Core.GetDeviceFromVma(vma);
        if (!found.TryGetValue(out var device))
        {
            return Errno.EFAULT;
        }

        if (dma.Pfnmap is { } binding)
        {
            // One device per mapping: the reference and the notifier are per vfio_dma.
            device.Put();
            if (!ReferenceEquals(binding.Device, device))
            {
                return Errno.EFAULT;
            }
        }
        else
        {
            binding = new PfnmapBinding(this, device);
            var registered = device.RegisterNotifier(binding.Block);
            if (!registered.IsOk)
            {
                device.Put();
                return registered;
            }

            dma.Pfnmap = binding;
        }

        var pfns = binding.Device.VmaToPfn(vma, vaddr - vma.Start, length);
        if (!pfns.TryGetValue(out var run))
        {
            return pfns.Error;
        }

        var bytes = run.Count << Geometry.PageShift;
        if (bytes != length || _machine.Memory.IsValidPfn(run.Start))
        {
            return Errno.EFAULT;
        }

        var mapped = MapAllDomains(dma.Iova + dma.Size, new PhysAddr(run.Start.Value << Geometry.PageShift), length, dma.Prot);
        if (!mapped.IsOk)
        {
            return mapped;
        }

        dma.Size += length;
        return KResult.Ok;
    }

    private KResult MapPfnmapLegacy(VfioDma dma, ulong vaddr, ulong length, bool write)
    {
        var shift = Geometry.PageShift;
        var end = vaddr + length;
        var va = vaddr;
        ulong runStart = 0;
        ulong runPages = 0;
        while (va < end)
        {
            // follow_fault_pfn(): look the pfn up, faulting it in once if it is not there yet.
            var entry = Gup.FollowPfnmap(dma.Mm, va);
            if (!entry.IsOk || (write && !entry.Value.Writable))
            {
                if (!Gup.FixupUserFault(dma.Mm, va, write).IsOk)
                {
                    return FlushRunThen(Errno.EFAULT);
                }

                entry = Gup.FollowPfnmap(dma.Mm, va);
                if (!entry.IsOk || (write && !entry.Value.Writable))
                {
                    return FlushRunThen(Errno.EFAULT);
                }
            }

            var e = entry.Value;
            if (_machine.Memory.IsValidPfn(e.Pfn))
            {
                return FlushRunThen(Errno.EFAULT);
            }

            var pages = Math.Min(e.PagesToLeafEnd, (end - va) >> shift);
            if (runPages != 0 && runStart + runPages == e.Pfn.Value)
            {
                runPages += pages;
            }
            else
            {
                var flushed = FlushRun();
                if (!flushed.IsOk)
                {
                    return flushed;
                }

                runStart = e.Pfn.Value;
                runPages = pages;
            }

            va += pages << shift;
        }

        return FlushRun();

        KResult FlushRunThen(Errno error)
        {
            var flushed = FlushRun();
            return flushed.IsOk ? error : flushed;
        }

        KResult FlushRun()
        {
            if (runPages == 0)
            {
                return KResult.Ok;
            }

            var bytes = runPages << shift;
            var mapped = MapAllDomains(dma.Iova + dma.Size, new PhysAddr(runStart << shift), bytes, dma.Prot);
            if (!mapped.IsOk)
            {
                return mapped;
            }

            dma.Size += bytes;
            runPages = 0;
            return KResult.Ok;
        }
    }

    // iommu_map() into every domain; a failure in one unmaps what the others got.
    private KResult MapAllDomains(ulong iova, PhysAddr phys, ulong bytes, IommuProt prot)
    {
        for (var i = 0; i < _domains.Count; i++)
        {
            var mapped = _domains[i].Domain.Map(new Iova(iova), phys, bytes, prot);
            if (!mapped.IsOk)
            {
                for (var j = 0; j < i; j++)
                {
                    _domains[j].Domain.Unmap(new Iova(iova), bytes);
                }

                return mapped;
            }
        }

        return KResult.Ok;
    }

    private void UnpinRuns(ReadOnlySpan<PfnRun> runs, IommuProt prot)
    {
        foreach (var run in runs)
        {
            Gup.UnpinPages(_machine.Memory, run, dirty: (prot & IommuProt.Write) != 0);
        }
    }

    // ================================================================ UNMAP_DMA

    // Like vfio_iommu_type1_unmap_dma(): copy in offsetofend(size), validate argsz and flags,
    // unmap, and write the unmapped size back only on success.
    private long UnmapDmaIoctl(IoctlArg arg)
    {
        var buf = arg.Buffer;
        if (!arg.IsBuffer || buf.Length < Type1Abi.UnmapMinSize)
        {
            return -(long)Errno.EFAULT;
        }

        var argsz = BinaryPrimitives.ReadUInt32LittleEndian(buf);
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(buf[4..]);
        const uint mask = Type1Abi.UNMAP_FLAG_GET_DIRTY_BITMAP | Type1Abi.UNMAP_FLAG_ALL | Type1Abi.UNMAP_FLAG_VADDR;
        if (argsz < Type1Abi.UnmapMinSize || (flags & ~mask) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        if ((flags & Type1Abi.UNMAP_FLAG_GET_DIRTY_BITMAP) != 0
            && (flags & (Type1Abi.UNMAP_FLAG_ALL | Type1Abi.UNMAP_FLAG_VADDR)) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        var iova = BinaryPrimitives.ReadUInt64LittleEndian(buf[Type1Abi.UnmapIovaOffset..]);
        var size = BinaryPrimitives.ReadUInt64LittleEndian(buf[Type1Abi.UnmapSizeOffset..]);

        UserBitmap? bitmap = null;
        if ((flags & Type1Abi.UNMAP_FLAG_GET_DIRTY_BITMAP) != 0)
        {
            if (argsz < Type1Abi.UnmapMinSize + UserBitmap.Size || buf.Length < Type1Abi.UnmapMinSize + UserBitmap.Size)
            {
                return -(long)Errno.EINVAL;
            }

            bitmap = UserBitmap.Read(buf[Type1Abi.UnmapMinSize..]);
            var verified = bitmap.Value.VerifySize(size);
            if (!verified.IsOk)
            {
                return -(long)verified.Error;
            }
        }

        var result = DoUnmap(flags, iova, size, bitmap, out var unmapped);
        if (!result.IsOk)
        {
            return -(long)result.Error;
        }

        BinaryPrimitives.WriteUInt64LittleEndian(buf[Type1Abi.UnmapSizeOffset..], unmapped);
        return 0;
    }

    /// <summary>
    /// Like vfio_dma_do_unmap() in current upstream. v2 refuses a range whose start or end falls
    /// inside a mapping; v1 removes whole mappings that start inside the range and stops at one that
    /// starts before it. UNMAP_ALL needs iova and size 0. FLAG_VADDR only invalidates the vaddrs.
    /// </summary>
    private KResult DoUnmap(uint flags, ulong iova, ulong size, UserBitmap? bitmap, out ulong unmapped)
    {
        unmapped = 0;
        var unmapAll = (flags & Type1Abi.UNMAP_FLAG_ALL) != 0;
        var invalidateVaddr = (flags & Type1Abi.UNMAP_FLAG_VADDR) != 0;
        lock (_lock)
        {
            var pgsize = MinPageSize();
            if ((iova & (pgsize - 1)) != 0)
            {
                return Errno.EINVAL;
            }

            ulong last;
            if (unmapAll)
            {
                if (iova != 0 || size != 0)
                {
                    return Errno.EINVAL;
                }

                last = ulong.MaxValue;
            }
            else
            {
                if (size == 0 || (size & (pgsize - 1)) != 0)
                {
                    return Errno.EINVAL;
                }

                if (iova > ulong.MaxValue - (size - 1))
                {
                    return Errno.EOVERFLOW;
                }

                last = iova + (size - 1);
            }

            // Dirty bitmaps only at the smallest page size, and only while tracking.
            if (bitmap is { } bm && (!_dirtyTracking || bm.PageSize != pgsize))
            {
                return Errno.EINVAL;
            }

            if (V2 && !unmapAll)
            {
                var first = FindFirstOverlap(iova, iova);
                if (first is not null && first.Iova != iova)
                {
                    return Errno.EINVAL;
                }

                var tail = FindFirstOverlap(last, last);
                if (tail is not null && tail.Last != last)
                {
                    return Errno.EINVAL;
                }
            }

            var index = FirstOverlapIndex(iova, last);
            var invalidated = new List<VfioDma>();
            while (index >= 0 && index < _dmas.Count)
            {
                var dma = _dmas[index];
                if (dma.Iova > last)
                {
                    break;
                }

                if (!V2 && iova > dma.Iova)
                {
                    break;
                }

                if (invalidateVaddr)
                {
                    if (dma.VaddrInvalid)
                    {
                        // Undo this call's invalidations: all or nothing.
                        foreach (var d in invalidated)
                        {
                            d.VaddrInvalid = false;
                            _vaddrInvalidCount--;
                        }

                        unmapped = 0;
                        return Errno.EINVAL;
                    }

                    dma.VaddrInvalid = true;
                    _vaddrInvalidCount++;
                    invalidated.Add(dma);
                    unmapped += dma.Size;
                    index++;
                    continue;
                }

                if (bitmap is { } b)
                {
                    var copied = b.CopyOut(dma, iova, pgsize);
                    if (!copied.IsOk)
                    {
                        return copied;
                    }
                }

                unmapped += dma.Size;
                RemoveDma(dma);
            }

            return KResult.Ok;
        }
    }

    // ================================================================ removal

    // vfio_remove_dma(): unmap and unpin, unlink, give the entry back. A device binding is dropped
    // from the workqueue: its notifier may not be unregistered under our lock (the core may call
    // back into this container from there) nor from inside the device's chain.
    private void RemoveDma(VfioDma dma)
    {
        if (dma.Pfnmap is { } binding)
        {
            dma.Pfnmap = null;
            ScheduleUnbind(binding);
        }

        UnmapUnpin(dma);
        _dmas.Remove(dma);
        _dmaAvail++;
        if (dma.VaddrInvalid)
        {
            dma.VaddrInvalid = false;
            _vaddrInvalidCount--;
        }
    }

    private void RemoveAllDmas()
    {
        while (_dmas.Count > 0)
        {
            RemoveDma(_dmas[^1]);
        }
    }

    // vfio_unmap_unpin(): every domain but the first just drops the range; the first one is the
    // record of what is pinned, so it is walked leaf by leaf and each RAM leaf is unpinned and
    // uncharged (MMIO has nothing to unpin).
    private void UnmapUnpin(VfioDma dma)
    {
        if (dma.Size == 0 || _domains.Count == 0)
        {
            return;
        }

        for (var i = 1; i < _domains.Count; i++)
        {
            _domains[i].Domain.Unmap(new Iova(dma.Iova), dma.Size);
        }

        var domain = _domains[0].Domain;
        var shift = Geometry.PageShift;
        var pageSize = Geometry.PageSize;
        var dirty = (dma.Prot & IommuProt.Write) != 0;
        long unlocked = 0;
        ulong done = 0;
        while (done < dma.Size)
        {
            var iova = dma.Iova + done;
            if (!domain.TryIovaToPhys(new Iova(iova), out var phys))
            {
                done += pageSize;
                continue;
            }

            var unmappedBytes = domain.Unmap(new Iova(iova), pageSize);
            if (unmappedBytes == 0)
            {
                done += pageSize;
                continue;
            }

            // A leaf never spans two mappings, so the leaf starts at iova and phys is its start.
            if (_machine.Memory.IsRam(phys.Value))
            {
                var pages = unmappedBytes >> shift;
                Gup.UnpinPages(_machine.Memory, new PfnRun(new Pfn(phys.Value >> shift), pages), dirty);
                unlocked += (long)pages;
            }

            done += unmappedBytes;
        }

        if (unlocked != 0)
        {
            dma.Mm.AccountLockedVm(unlocked, increment: false);
        }
    }

    private void ScheduleUnbind(PfnmapBinding binding)
    {
        if (!binding.TryBeginRelease())
        {
            return;
        }

        // Like unregister_device_bg() of RFC 10/10.
        _machine.SystemWorkqueue.Schedule(() =>
        {
            binding.Device.UnregisterNotifier(binding.Block);
            binding.Device.Put();
        }, $"type1: drop {binding.Device.Name}");
    }

    /// <summary>
    /// The device notifier callback of RFC 10/10 (vfio_device_nb_cb): on Release every mapping that
    /// holds this device is removed from every domain, and the unregistration is deferred to the
    /// system workqueue, since unregistering from inside the chain would deadlock (EDEADLK here).
    /// The model has no external (mdev) pins on such mappings: they are MMIO and emulated access is
    /// not implemented, so there is no pfn list to flush first.
    /// </summary>
    internal void OnPfnmapDeviceReleased(PfnmapBinding binding)
    {
        lock (_lock)
        {
            foreach (var dma in _dmas.Where(d => ReferenceEquals(d.Pfnmap, binding)).ToList())
            {
                RemoveDma(dma);
            }
        }

        ScheduleUnbind(binding);
    }

    // ================================================================ the dma list

    private void Link(VfioDma dma)
    {
        var lo = 0;
        var hi = _dmas.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (_dmas[mid].Iova < dma.Iova)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        _dmas.Insert(lo, dma);
    }

    // The first mapping (by iova) that intersects [start, last], as an index; -1 when none.
    // A mapping still being built (Size 0) covers only its first page for overlap purposes.
    private int FirstOverlapIndex(ulong start, ulong last)
    {
        var lo = 0;
        var hi = _dmas.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (LastOf(_dmas[mid]) < start)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo < _dmas.Count && _dmas[lo].Iova <= last ? lo : -1;

        static ulong LastOf(VfioDma d) => d.Size == 0 ? d.Iova : d.Last;
    }

    private VfioDma? FindFirstOverlap(ulong start, ulong last)
    {
        var i = FirstOverlapIndex(start, last);
        return i < 0 ? null : _dmas[i];
    }

    // ================================================================ dirty tracking

    // Like vfio_iommu_type1_dirty_pages(): START/STOP/GET_BITMAP, exactly one at a time. The model
    // has no pinned-page dirty scope, so like the kernel without one, every mapped page reads dirty
    // while tracking is on.
    private long DirtyPagesIoctl(IoctlArg arg)
    {
        const uint start = 1, stop = 2, get = 4;
        var buf = arg.Buffer;
        if (!arg.IsBuffer || buf.Length < 8)
        {
            return -(long)Errno.EFAULT;
        }

        var argsz = BinaryPrimitives.ReadUInt32LittleEndian(buf);
        var flags = BinaryPrimitives.ReadUInt32LittleEndian(buf[4..]);
        if (argsz < 8 || (flags & ~(start | stop | get)) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        // Exactly one flag.
        if (flags == 0 || (flags & (flags - 1)) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        lock (_lock)
        {
            var pgsize = MinPageSize();
            switch (flags)
            {
                case start:
                    if (!_dirtyTracking)
                    {
                        foreach (var dma in _dmas)
                        {
                            dma.DirtyBitmap = NewFullBitmap(dma.Size, pgsize);
                        }

                        _dirtyTracking = true;
                    }

                    return 0;
                case stop:
                    if (_dirtyTracking)
                    {
                        foreach (var dma in _dmas)
                        {
                            dma.DirtyBitmap = null;
                        }

                        _dirtyTracking = false;
                    }

                    return 0;
            }
        }

        // GET_BITMAP: struct vfio_iommu_type1_dirty_bitmap_get { u64 iova; u64 size; struct vfio_bitmap; } after the 8-byte header.
        const int rangeSize = 16 + UserBitmap.Size;
        var dataSize = argsz - 8;
        if (dataSize == 0 || dataSize < rangeSize)
        {
            return -(long)Errno.EINVAL;
        }

        if (buf.Length < 8 + rangeSize)
        {
            return -(long)Errno.EFAULT;
        }

        var iova = BinaryPrimitives.ReadUInt64LittleEndian(buf[8..]);
        var size = BinaryPrimitives.ReadUInt64LittleEndian(buf[16..]);
        var bitmap = UserBitmap.Read(buf[24..]);
        if (size == 0)
        {
            return -(long)Errno.EINVAL;
        }

        if (iova > ulong.MaxValue - (size - 1))
        {
            return -(long)Errno.EOVERFLOW;
        }

        var verified = bitmap.VerifySize(size);
        if (!verified.IsOk)
        {
            return -(long)verified.Error;
        }

        lock (_lock)
        {
            var pgsize = MinPageSize();
            var last = iova + (size - 1);
            if (bitmap.PageSize != pgsize || (iova & (pgsize - 1)) != 0 || (size & (pgsize - 1)) != 0)
            {
                return -(long)Errno.EINVAL;
            }

            // vfio_iova_dirty_bitmap(): the range must cover whole mappings.
            var first = FindFirstOverlap(iova, iova);
            if (first is not null && first.Iova != iova)
            {
                return -(long)Errno.EINVAL;
            }

            var tail = FindFirstOverlap(last, last);
            if (tail is not null && tail.Last != last)
            {
                return -(long)Errno.EINVAL;
            }

            if (!_dirtyTracking)
            {
                return -(long)Errno.EINVAL;
            }

            var index = FirstOverlapIndex(iova, last);
            while (index >= 0 && index < _dmas.Count && _dmas[index].Iova <= last)
            {
                var copied = bitmap.CopyOut(_dmas[index], iova, pgsize);
                if (!copied.IsOk)
                {
                    return -(long)copied.Error;
                }

                index++;
            }

            return 0;
        }
    }

    private static ulong[] NewFullBitmap(ulong size, ulong pgsize)
    {
        var bits = size / pgsize;
        var words = new ulong[(bits + 63) / 64];
        for (ulong i = 0; i < bits; i++)
        {
            words[i / 64] |= 1UL << (int)(i % 64);
        }

        return words;
    }

    private sealed record DomainEntry(IommuDomain Domain, List<IommuGroup> Groups);

    private sealed class RunBufferPolicy : IPooledObjectPolicy<PfnRun[]>
    {
        // Enough runs for a batch of scattered 4K pages; contiguous folios collapse into one run.
        public PfnRun[] Create() => new PfnRun[512];

        public bool Return(PfnRun[] obj) => true;
    }
}
