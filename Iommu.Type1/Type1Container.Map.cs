using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Uapi;
using KernelModel.Vfio;
using Microsoft.Extensions.ObjectPool;

namespace KernelModel.Iommu.Type1;

/// <summary>VFIO_IOMMU_MAP_DMA: the pin and map paths, RAM and VM_PFNMAP.</summary>
internal sealed partial class Type1Container
{
    private static readonly ObjectPool<PfnRun[]> s_runBuffers =
        new DefaultObjectPool<PfnRun[]>(new RunBufferPolicy(), Environment.ProcessorCount * 2);


    private static readonly int MapMinsz = UapiTable.LayoutOf<VfioIommuType1DmaMap>().OffsetOfEnd("size");

    // Like vfio_iommu_type1_map_dma(): copy in offsetofend(size), then argsz and flags.
    private long MapDmaIoctl(IoctlArg arg)
    {
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser(arg.Buffer, MapMinsz, out VfioIommuType1DmaMap map))
        {
            return -(long)Errno.EFAULT;
        }

        const uint mask = VfioUapi.VFIO_DMA_MAP_FLAG_READ | VfioUapi.VFIO_DMA_MAP_FLAG_WRITE | VfioUapi.VFIO_DMA_MAP_FLAG_VADDR;
        if (map.Argsz < MapMinsz || (map.Flags & ~mask) != 0)
        {
            return -(long)Errno.EINVAL;
        }

        return DoMap(map.Flags, map.Vaddr, map.Iova, map.Size).ToSyscall();
    }

    /// <summary>
    /// Like vfio_dma_do_map(), in its current upstream order. The top of the IOVA space follows
    /// upstream since Linux 6.18 ("handle DMA map/unmap up to the addressable limit"): the end is
    /// computed as iova + size - 1, so a mapping may end at the last address, and a range that
    /// wraps is EOVERFLOW (not EINVAL as before), which is what the kernel's vfio selftests expect.
    /// </summary>
    private KResult DoMap(uint flags, ulong vaddr, ulong iova, ulong size)
    {
        var setVaddr = (flags & VfioUapi.VFIO_DMA_MAP_FLAG_VADDR) != 0;
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
        if ((flags & VfioUapi.VFIO_DMA_MAP_FLAG_WRITE) != 0)
        {
            prot |= IommuProt.Write;
        }

        if ((flags & VfioUapi.VFIO_DMA_MAP_FLAG_READ) != 0)
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

            if (!RangeIsValid(_iovaList, iova, iovaLast))
            {
                return Errno.EINVAL;
            }

            // The pin path only runs for the caller (current->mm).
            if (UserProcess.Current?.Mm is not { } mm)
            {
                return Errno.ENODEV;
            }

            var dma = NewDma(iova, vaddr, prot, mm);
            Link(dma);
            _dmaAvail--;

            if (_domains.Count == 0)
            {
                dma.Size = size;
            }
            else
            {
                var mapped = PinMapDma(dma, size);
                dma.IommuMapped = true;
                if (!mapped.IsOk)
                {
                    RemoveDma(dma);
                    return mapped;
                }
            }

            if (_dirtyTracking)
            {
                dma.DirtyBitmap = DirtyBitmap.Allocate(dma.Size, pgsize);
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

    private sealed class RunBufferPolicy : IPooledObjectPolicy<PfnRun[]>
    {
        // Enough runs for a batch of scattered 4K pages; contiguous folios collapse into one run.
        public PfnRun[] Create() => new PfnRun[512];

        public bool Return(PfnRun[] obj) => true;
    }
}
