using KernelModel.Kernel;

namespace KernelModel.Mm;

/// <summary>
/// The operations of a VMA (struct vm_operations_struct). A driver derives a sealed class; the
/// defaults behave like a missing entry.
/// </summary>
public abstract class VmOperations
{
    /// <summary>A VMA was created from another (split): take whatever references the driver keeps.</summary>
    public virtual void Open(Vma vma)
    {
    }

    /// <summary>A VMA is going away.</summary>
    public virtual void Close(Vma vma)
    {
    }

    /// <summary>A page fault at base-page granularity. Insert a pfn and return NoPage, or set <see cref="VmFault.Folio"/>.</summary>
    public virtual VmFaultResult Fault(VmFault vmf) => VmFaultResult.SigBus;

    /// <summary>A fault that may be satisfied by a mapping of 2^<paramref name="order"/> pages; Fallback to decline.</summary>
    public virtual VmFaultResult HugeFault(VmFault vmf, int order) => VmFaultResult.Fallback;

    /// <summary>A name for diagnostics (what /proc/pid/maps would show).</summary>
    public virtual string Name(Vma vma) => vma.File?.Inode.Name ?? "";
}

/// <summary>A page fault being handled (struct vm_fault).</summary>
public sealed class VmFault
{
    internal VmFault(Vma vma, ulong address, bool write)
    {
        Vma = vma;
        Address = address;
        Write = write;
    }

    /// <summary>The faulting VMA.</summary>
    public Vma Vma { get; }

    /// <summary>The faulting address, rounded down to the page.</summary>
    public ulong Address { get; }

    /// <summary>True for a write fault.</summary>
    public bool Write { get; }

    /// <summary>The file page offset of <see cref="Address"/> (vm_pgoff plus the page index in the VMA).</summary>
    public ulong PgOff => Vma.PgOff + ((Address - Vma.Start) >> Vma.Mm.Geometry.PageShift);

    /// <summary>A page-cache folio the handler returns for the core to map (instead of inserting a pfn).</summary>
    public Folio? Folio { get; set; }
}

/// <summary>
/// A virtual memory area (struct vm_area_struct): [Start, End) of one process with one set of
/// flags, one file and one page offset.
/// </summary>
public sealed class Vma
{
    internal Vma(MmStruct mm, ulong start, ulong end, VmFlags flags, ulong pgoff)
    {
        Mm = mm;
        Start = start;
        End = end;
        Flags = flags;
        PgOff = pgoff;
    }

    /// <summary>The address space it belongs to.</summary>
    public MmStruct Mm { get; }

    /// <summary>vm_start.</summary>
    public ulong Start { get; internal set; }

    /// <summary>vm_end (exclusive).</summary>
    public ulong End { get; internal set; }

    /// <summary>The length in bytes.</summary>
    public ulong Length => End - Start;

    /// <summary>vm_flags. Drivers set VM_PFNMAP/VM_IO in their mmap op.</summary>
    public VmFlags Flags { get; set; }

    /// <summary>vm_pgoff: the file offset of Start, in pages.</summary>
    public ulong PgOff { get; internal set; }

    /// <summary>vm_file (holds a reference).</summary>
    public File? File { get; internal set; }

    /// <summary>vm_ops, set by the file's mmap op.</summary>
    public VmOperations? Operations { get; set; }

    /// <summary>vm_private_data.</summary>
    public object? PrivateData { get; set; }

    /// <summary>The page shift of a hugetlb VMA, else 0.</summary>
    public int HugetlbShift { get; internal set; }

    /// <summary>True once munmap (or process exit) removed it.</summary>
    public bool IsDetached { get; internal set; }

    /// <summary>True for anonymous memory (no file).</summary>
    public bool IsAnonymous => File is null;

    /// <summary>True when the VMA maps raw pfns (VM_PFNMAP or VM_IO).</summary>
    public bool IsPfnMap => (Flags & (VmFlags.PfnMap | VmFlags.Io)) != 0;

    /// <summary>True when <paramref name="addr"/> lies inside.</summary>
    public bool Contains(ulong addr) => addr >= Start && addr < End;

    /// <summary>
    /// vmf_insert_pfn(): maps one base page of a VM_PFNMAP VMA to <paramref name="pfn"/>.
    /// EINVAL outside the VMA or without VM_PFNMAP; EBUSY when the page is already mapped.
    /// </summary>
    public KResult InsertPfn(ulong addr, Pfn pfn) => Mm.InsertPfn(this, addr, pfn, 0);

    /// <summary>
    /// vmf_insert_pfn_pmd()/_pud(): maps a naturally aligned 2^order run of pfns with one entry.
    /// The order must be the PMD or PUD order of the machine.
    /// </summary>
    public KResult InsertPfnHuge(ulong addr, Pfn pfn, int order) => Mm.InsertPfnOrder(this, addr, pfn, order);

    /// <summary>
    /// remap_pfn_range(): maps [addr, addr+size) to the pfns from <paramref name="pfn"/> and marks
    /// the VMA VM_IO|VM_PFNMAP|VM_DONTEXPAND|VM_DONTDUMP. The model stores aligned stretches as
    /// huge entries (the kernel writes base PTEs); only memory use differs, not what user space sees.
    /// </summary>
    public KResult RemapPfnRange(ulong addr, Pfn pfn, ulong size) => Mm.RemapPfnRange(this, addr, pfn, size);

    /// <inheritdoc />
    public override string ToString() =>
        $"{Start:x}-{End:x} {Flags} pgoff 0x{PgOff:x} {Operations?.Name(this) ?? File?.Inode.Name ?? "[anon]"}";
}
