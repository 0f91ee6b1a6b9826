using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Uapi;
using KernelModel.Vfio;
using static KernelModel.Uapi.VfioUapi;

namespace KernelModel.Pci.VfioPci;

public sealed partial class VfioPciDevice
{
    private const uint VgaRegionSize = 0xc0000;
    private readonly SparseStore _vgaLegacy = new(4096);

    /// <summary>has_vga: a VGA-class function (class 0x0300) also exposes the legacy VGA ranges.</summary>
    public bool HasVga => (Function.Spec.ClassCode >> 8) == 0x0300;

    // ------------------------------------------------------------------ GET_REGION_INFO

    // Like vfio_pci_ioctl_get_region_info(). The capability chain follows the struct when argsz
    // has room for it; otherwise argsz grows to what is needed and cap_offset stays 0, so the
    // caller can retry with a bigger buffer.
    private long GetRegionInfo(IoctlArg arg)
    {
        var minsz = UapiStruct.SizeOf<VfioRegionInfo>();
        if (!arg.IsBuffer || !UapiStruct.TryCopyFromUser<VfioRegionInfo>(arg.Buffer, minsz, out var info))
        {
            return Fail(Errno.EFAULT);
        }

        if (info.Argsz < minsz)
        {
            return Fail(Errno.EINVAL);
        }

        var caps = new VfioInfoCap();
        switch (info.Index)
        {
            case VFIO_PCI_CONFIG_REGION_INDEX:
                info.Offset = VfioPciRegions.IndexToOffset((int)info.Index);
                info.Size = (ulong)Function.Config.Size;
                info.Flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
                break;

            case <= VFIO_PCI_BAR5_REGION_INDEX:
            {
                var bar = Function.Bars[(int)info.Index];
                info.Offset = VfioPciRegions.IndexToOffset((int)info.Index);
                info.Size = bar.Size;
                if (info.Size == 0)
                {
                    info.Flags = 0;
                    break;
                }

                info.Flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
                if (_barMmapSupported[info.Index])
                {
                    info.Flags |= VFIO_REGION_INFO_FLAG_MMAP;
                    if (info.Index == MsixBar)
                    {
                        AddMsixCapability(caps, bar.Size);
                    }
                }

                break;
            }

            case VFIO_PCI_ROM_REGION_INDEX:
            {
                info.Offset = VfioPciRegions.IndexToOffset((int)info.Index);
                info.Flags = 0;
                info.Size = Function.Rom?.Size ?? 0;
                if (info.Size == 0)
                {
                    break;
                }

                // Is it really there? A ROM image starts with 0x55 0xaa; decode must be on to look.
                var wasOff = MemoryLockAndEnable();
                try
                {
                    Span<byte> signature = stackalloc byte[2];
                    Function.Rom!.Contents.Read(0, signature);
                    if (signature[0] == 0x55 && signature[1] == 0xaa)
                    {
                        info.Flags = VFIO_REGION_INFO_FLAG_READ;
                    }
                    else
                    {
                        info.Size = 0;
                    }
                }
                finally
                {
                    MemoryUnlockAndRestore(wasOff);
                }

                break;
            }

            case VFIO_PCI_VGA_REGION_INDEX:
                if (!HasVga)
                {
                    return Fail(Errno.EINVAL);
                }

                info.Offset = VfioPciRegions.IndexToOffset((int)info.Index);
                info.Size = VgaRegionSize;
                info.Flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
                break;

            default:
                // No device-specific regions beyond the nine fixed ones.
                return Fail(Errno.EINVAL);
        }

        if (caps.Size != 0)
        {
            info.Flags |= VFIO_REGION_INFO_FLAG_CAPS;
            if (info.Argsz < minsz + caps.Size)
            {
                info.Argsz = (uint)(minsz + caps.Size);
                info.CapOffset = 0;
            }
            else
            {
                caps.Shift(minsz);
                if (arg.Buffer.Length < minsz + caps.Size)
                {
                    return Fail(Errno.EFAULT);
                }

                caps.Buffer.CopyTo(arg.Buffer[minsz..]);
                info.CapOffset = (uint)minsz;
            }
        }

        return UapiStruct.TryCopyToUser(arg.Buffer, info, minsz) ? 0 : Fail(Errno.EFAULT);
    }

    // The MSI-X page policy (seed: "vfio-pci: Allow mapping MSIX BAR"). Since Linux 4.16 the kernel
    // no longer polices the table: the BAR carries VFIO_REGION_INFO_CAP_MSIX_MAPPABLE and may be
    // mmapped whole (msix_mappable_cap()). The older policy, a machine setting here, describes the
    // mmappable parts with a sparse-mmap capability that leaves out the page(s) holding the table
    // (msix_sparse_mmap_cap()) — on 64 KiB pages that takes registers sharing the page with it.
    private void AddMsixCapability(VfioInfoCap caps, ulong barSize)
    {
        if (MsixMappable)
        {
            caps.Add(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1, VfioInfoCap.HeaderSize);
            return;
        }

        var areas = SparseAreas(barSize);
        var header = UapiStruct.SizeOf<VfioRegionInfoCapSparseMmap>();
        var areaSize = UapiStruct.SizeOf<VfioRegionSparseMmapArea>();
        var cap = caps.Add(VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, header + (areas.Count * areaSize));
        BinaryPrimitives.WriteUInt32LittleEndian(cap[8..], (uint)areas.Count);
        for (var i = 0; i < areas.Count; i++)
        {
            UapiStruct.Write(cap[(header + (i * areaSize))..], new VfioRegionSparseMmapArea { Offset = areas[i].Offset, Size = areas[i].Size });
        }
    }

    /// <summary>The mmappable areas of the MSI-X BAR under the older policy: everything but the table's pages.</summary>
    internal List<(ulong Offset, ulong Size)> SparseAreas(ulong barSize)
    {
        var pageMask = ~(Geometry.PageSize - 1);
        var tableStart = MsixOffset & pageMask;
        var tableEnd = (MsixOffset + MsixSize + Geometry.PageSize - 1) & pageMask;
        var areas = new List<(ulong, ulong)>(2);
        if (tableStart != 0)
        {
            areas.Add((0, tableStart));
        }

        if (tableEnd < barSize)
        {
            areas.Add((tableEnd, barSize - tableEnd));
        }

        return areas;
    }

    // ------------------------------------------------------------------ read and write

    /// <inheritdoc />
    protected override long Read(Span<byte> buffer, long offset) => buffer.IsEmpty ? 0 : ReadWrite(buffer, offset, isWrite: false);

    /// <inheritdoc />
    protected override long Write(ReadOnlySpan<byte> buffer, long offset)
    {
        if (buffer.IsEmpty)
        {
            return 0;
        }

        // The helpers share one path for both directions; a write never stores into its source.
        var copy = buffer.ToArray();
        return ReadWrite(copy, offset, isWrite: true);
    }

    // Like vfio_pci_rw().
    private long ReadWrite(Span<byte> buffer, long offset, bool isWrite)
    {
        var index = VfioPciRegions.OffsetToIndex((ulong)offset);
        var pos = (ulong)offset & VfioPciRegions.OffsetMask;
        if (index >= VfioPciRegions.NumRegions || _vconfig is not { } vconfig)
        {
            return Fail(Errno.EINVAL);
        }

        return index switch
        {
            VFIO_PCI_CONFIG_REGION_INDEX => vconfig.ReadWrite(buffer, pos, isWrite),
            VFIO_PCI_ROM_REGION_INDEX => isWrite ? Fail(Errno.EINVAL) : BarReadWrite((int)index, buffer, pos, isWrite),
            VFIO_PCI_VGA_REGION_INDEX => VgaReadWrite(buffer, pos, isWrite),
            _ => BarReadWrite((int)index, buffer, pos, isWrite),
        };
    }

    // Like vfio_pci_bar_rw() and vfio_pci_core_do_io_rw(): memory BARs and the ROM need memory
    // enabled (EIO otherwise, checked under memory_lock); the bytes of the MSI-X table are skipped
    // — reads give 0xff, writes are dropped — whatever the mmap policy, since SET_IRQS alone
    // programs MSI-X.
    private long BarReadWrite(int index, Span<byte> buffer, ulong pos, bool isWrite)
    {
        Interlocked.Increment(ref _slowPathAccesses);
        ulong end;
        PciBar? bar = null;
        if (index == VFIO_PCI_ROM_REGION_INDEX)
        {
            if (Function.Rom is not { } rom)
            {
                return Fail(Errno.EINVAL);
            }

            end = rom.Size;
        }
        else
        {
            bar = Function.Bars[index];
            if (bar.Start == 0 || bar.Size == 0)
            {
                return Fail(Errno.EINVAL);
            }

            end = bar.Size;
        }

        if (pos >= end)
        {
            return Fail(Errno.EINVAL);
        }

        var count = (int)Math.Min((ulong)buffer.Length, end - pos);
        var window = buffer[..count];
        ulong xStart = 0, xEnd = 0;
        if (index == MsixBar)
        {
            xStart = MsixOffset;
            xEnd = MsixOffset + MsixSize;
        }

        var testMem = bar is null || bar.IsMemory;
        if (testMem)
        {
            MemoryLock.DownRead();
        }

        try
        {
            if (testMem && !MemoryEnabledLocked())
            {
                return Fail(Errno.EIO);
            }

            var done = 0;
            while (done < count)
            {
                var at = pos + (ulong)done;
                int n;
                if (at >= xStart && at < xEnd)
                {
                    n = (int)Math.Min((ulong)(count - done), xEnd - at);
                    if (!isWrite)
                    {
                        window.Slice(done, n).Fill(0xff);
                    }
                }
                else
                {
                    n = at < xStart ? (int)Math.Min((ulong)(count - done), xStart - at) : count - done;
                    var part = window.Slice(done, n);
                    if (bar is null)
                    {
                        Function.Rom!.Contents.Read(at, part);
                    }
                    else if (bar.IsIo)
                    {
                        if (isWrite)
                        {
                            bar.Ports!.Write(at, part);
                        }
                        else
                        {
                            bar.Ports!.Read(at, part);
                        }
                    }
                    else if (isWrite)
                    {
                        bar.Region!.Write(at, part);
                    }
                    else
                    {
                        bar.Region!.Read(at, part);
                    }
                }

                done += n;
            }

            return count;
        }
        finally
        {
            if (testMem)
            {
                MemoryLock.UpRead();
            }
        }
    }

    // Like vfio_pci_vga_rw(): the legacy VGA memory and I/O ranges, each accessed within itself.
    private long VgaReadWrite(Span<byte> buffer, ulong pos, bool isWrite)
    {
        if (!HasVga)
        {
            return Fail(Errno.EINVAL);
        }

        ulong end;
        if (pos >= 0xa0000 && pos < 0xc0000)
        {
            end = 0xc0000;
        }
        else if (pos >= 0x3b0 && pos < 0x3bc)
        {
            end = 0x3bc;
        }
        else if (pos >= 0x3c0 && pos < 0x3e0)
        {
            end = 0x3e0;
        }
        else
        {
            return Fail(Errno.EINVAL);
        }

        var count = (int)Math.Min((ulong)buffer.Length, end - pos);
        if (isWrite)
        {
            _vgaLegacy.Write(pos, buffer[..count]);
        }
        else
        {
            _vgaLegacy.Read(pos, buffer[..count]);
        }

        return count;
    }

    // ------------------------------------------------------------------ mmap

    // Like vfio_pci_core_mmap(), with the RFC's rule that vm_pgoff keeps the region encoding (the
    // fault handler and VmaToPfn decode it) instead of being rewritten to the BAR's pfn.
    /// <inheritdoc />
    protected override KResult Mmap(Vma vma)
    {
        var shift = Geometry.PageShift;
        var indexShift = VfioPciRegions.OffsetShift - shift;
        var index = vma.PgOff >> indexShift;
        if (index >= VfioPciRegions.NumRegions || (vma.Flags & VmFlags.Shared) == 0 || index >= VFIO_PCI_ROM_REGION_INDEX
            || !_barMmapSupported[index])
        {
            return Errno.EINVAL;
        }

        var bar = Function.Bars[(int)index];
        var physLen = (bar.Size + Geometry.PageSize - 1) & ~(Geometry.PageSize - 1);
        var reqLen = vma.Length;
        var reqStart = (vma.PgOff & ((1UL << indexShift) - 1)) << shift;
        if (reqStart > physLen || reqLen > physLen - reqStart)
        {
            return Errno.EINVAL;
        }

        // The older MSI-X policy: an mmap may not overlap the table (the pages the sparse
        // capability left out); the user reaches registers there through read and write.
        if (!MsixMappable && (int)index == MsixBar
            && !(reqStart >= MsixOffset + MsixSize || reqStart + reqLen <= MsixOffset))
        {
            return Errno.EINVAL;
        }

        vma.PrivateData = this;
        vma.Flags |= VmFlags.Io | VmFlags.PfnMap | VmFlags.DontExpand | VmFlags.DontDump;
        vma.Operations = VfioPciVmOperations.Instance;
        return KResult.Ok;
    }

    /// <summary>The BAR a VMA of this device maps and the page offset into it, from vm_pgoff.</summary>
    private bool TryDecode(Vma vma, out PciBar bar, out ulong pgoff)
    {
        var indexShift = VfioPciRegions.OffsetShift - Geometry.PageShift;
        var index = vma.PgOff >> indexShift;
        pgoff = vma.PgOff & ((1UL << indexShift) - 1);
        bar = index < 6 ? Function.Bars[(int)index] : null!;
        return index < 6 && bar.IsMemory;
    }

    // Like vfio_pci_mmap_fault() as the seed (RFC 03-04/10) leaves it: memory_lock for read; SIGBUS
    // while memory is disabled; otherwise the whole VMA is mapped in one go. If part of it is
    // already mapped (a concurrent fault got there first), only the faulting page is inserted.
    internal VmFaultResult MmapFault(VmFault vmf)
    {
        Interlocked.Increment(ref _faults);
        var vma = vmf.Vma;
        if (!TryDecode(vma, out var bar, out var pgoff))
        {
            return VmFaultResult.SigBus;
        }

        var shift = Geometry.PageShift;
        var first = new Pfn((bar.Start >> shift) + pgoff);
        MemoryLock.DownRead();
        try
        {
            if (!MemoryEnabledLocked())
            {
                return VmFaultResult.SigBus;
            }

            var whole = vma.RemapPfnRange(vma.Start, first, vma.Length);
            if (whole.IsOk)
            {
                return VmFaultResult.NoPage;
            }

            if (whole.Error != Errno.EBUSY)
            {
                return VmFaultResult.SigBus;
            }

            var one = vma.InsertPfn(vmf.Address, first + ((vmf.Address - vma.Start) >> shift));
            return one.IsOk || one.Error == Errno.EBUSY ? VmFaultResult.NoPage : VmFaultResult.SigBus;
        }
        finally
        {
            MemoryLock.UpRead();
        }
    }

    /// <summary>
    /// The pfns [offset, offset + length) of a VMA of this device maps: the BAR's first pfn plus
    /// the page offset that vm_pgoff encodes — no page-table walk, so it answers the same whether
    /// or not the VMA is populated or was zapped. EINVAL for another device's VMA, a range outside
    /// the VMA, or unaligned arguments.
    /// </summary>
    public override KResult<PfnRun> VmaToPfn(Vma vma, ulong offset, ulong length)
    {
        if (!ReferenceEquals(vma.File?.PrivateData, this) || length == 0 || offset > vma.Length || length > vma.Length - offset
            || !Geometry.IsPageAligned(offset) || !Geometry.IsPageAligned(length) || !TryDecode(vma, out var bar, out var pgoff))
        {
            return Errno.EINVAL;
        }

        var shift = Geometry.PageShift;
        return new PfnRun(new Pfn((bar.Start >> shift) + pgoff + (offset >> shift)), length >> shift);
    }

    /// <summary>The vm_operations of a BAR mmap.</summary>
    private sealed class VfioPciVmOperations : VmOperations
    {
        public static readonly VfioPciVmOperations Instance = new();

        public override VmFaultResult Fault(VmFault vmf) =>
            vmf.Vma.PrivateData is VfioPciDevice device ? device.MmapFault(vmf) : VmFaultResult.SigBus;

        public override string Name(Vma vma) =>
            vma.PrivateData is VfioPciDevice device ? $"vfio-pci {device.Name} BAR{vma.PgOff >> (VfioPciRegions.OffsetShift - device.Geometry.PageShift)}" : base.Name(vma);
    }
}
