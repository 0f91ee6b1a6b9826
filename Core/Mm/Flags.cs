namespace KernelModel
{
    /// <summary>mmap/mprotect protection bits (PROT_*), Linux values.</summary>
    [Flags]
    public enum Prot
    {
        /// <summary>PROT_NONE.</summary>
        None = 0,
        /// <summary>PROT_READ.</summary>
        Read = 1,
        /// <summary>PROT_WRITE.</summary>
        Write = 2,
        /// <summary>PROT_EXEC.</summary>
        Exec = 4,
    }

    /// <summary>mmap flags (MAP_*), Linux x86_64 values; the huge page size is encoded from bit 26.</summary>
    [Flags]
    public enum MapFlags
    {
        /// <summary>No flags (invalid on its own: one of Shared or Private is required).</summary>
        None = 0,
        /// <summary>MAP_SHARED.</summary>
        Shared = 0x01,
        /// <summary>MAP_PRIVATE.</summary>
        Private = 0x02,
        /// <summary>MAP_SHARED_VALIDATE.</summary>
        SharedValidate = 0x03,
        /// <summary>MAP_FIXED.</summary>
        Fixed = 0x10,
        /// <summary>MAP_ANONYMOUS.</summary>
        Anonymous = 0x20,
        /// <summary>MAP_LOCKED.</summary>
        Locked = 0x2000,
        /// <summary>MAP_NORESERVE.</summary>
        NoReserve = 0x4000,
        /// <summary>MAP_POPULATE.</summary>
        Populate = 0x8000,
        /// <summary>MAP_HUGETLB.</summary>
        HugeTlb = 0x40000,
        /// <summary>MAP_FIXED_NOREPLACE.</summary>
        FixedNoReplace = 0x100000,
        /// <summary>MAP_HUGE_2MB (21 &lt;&lt; MAP_HUGE_SHIFT).</summary>
        Huge2MB = 21 << 26,
        /// <summary>MAP_HUGE_16MB (24 &lt;&lt; MAP_HUGE_SHIFT).</summary>
        Huge16MB = 24 << 26,
        /// <summary>MAP_HUGE_1GB (30 &lt;&lt; MAP_HUGE_SHIFT).</summary>
        Huge1GB = 30 << 26,
    }

    /// <summary>madvise advice values used by the model (MADV_*).</summary>
    public enum Madvise
    {
        /// <summary>MADV_NORMAL.</summary>
        Normal = 0,
        /// <summary>MADV_DONTNEED.</summary>
        DontNeed = 4,
        /// <summary>MADV_HUGEPAGE.</summary>
        HugePage = 14,
        /// <summary>MADV_NOHUGEPAGE.</summary>
        NoHugePage = 15,
    }
}

namespace KernelModel.Mm
{
    /// <summary>VMA flags (VM_*), Linux values.</summary>
    [Flags]
    public enum VmFlags : ulong
    {
        /// <summary>None.</summary>
        None = 0,
        /// <summary>VM_READ.</summary>
        Read = 0x1,
        /// <summary>VM_WRITE.</summary>
        Write = 0x2,
        /// <summary>VM_EXEC.</summary>
        Exec = 0x4,
        /// <summary>VM_SHARED.</summary>
        Shared = 0x8,
        /// <summary>VM_MAYREAD.</summary>
        MayRead = 0x10,
        /// <summary>VM_MAYWRITE.</summary>
        MayWrite = 0x20,
        /// <summary>VM_MAYEXEC.</summary>
        MayExec = 0x40,
        /// <summary>VM_MAYSHARE.</summary>
        MayShare = 0x80,
        /// <summary>VM_PFNMAP: raw pfns, no struct page behind the PTEs.</summary>
        PfnMap = 0x400,
        /// <summary>VM_LOCKED.</summary>
        Locked = 0x2000,
        /// <summary>VM_IO: memory-mapped I/O.</summary>
        Io = 0x4000,
        /// <summary>VM_DONTCOPY.</summary>
        DontCopy = 0x20000,
        /// <summary>VM_DONTEXPAND.</summary>
        DontExpand = 0x40000,
        /// <summary>VM_NORESERVE.</summary>
        NoReserve = 0x200000,
        /// <summary>VM_HUGETLB.</summary>
        HugeTlb = 0x400000,
        /// <summary>VM_DONTDUMP.</summary>
        DontDump = 0x4000000,
        /// <summary>VM_HUGEPAGE (MADV_HUGEPAGE).</summary>
        HugePage = 0x20000000,
        /// <summary>VM_NOHUGEPAGE (MADV_NOHUGEPAGE).</summary>
        NoHugePage = 0x40000000,
    }

    /// <summary>What a fault handler returns (VM_FAULT_*), Linux values; 0 is success.</summary>
    [Flags]
    public enum VmFaultResult
    {
        /// <summary>The page was found or installed.</summary>
        None = 0,
        /// <summary>VM_FAULT_OOM.</summary>
        Oom = 0x1,
        /// <summary>VM_FAULT_SIGBUS.</summary>
        SigBus = 0x2,
        /// <summary>VM_FAULT_SIGSEGV.</summary>
        SigSegv = 0x40,
        /// <summary>VM_FAULT_NOPAGE: the handler installed the PTE itself.</summary>
        NoPage = 0x100,
        /// <summary>VM_FAULT_FALLBACK: a huge fault could not be satisfied; try a smaller size.</summary>
        Fallback = 0x800,
    }

    /// <summary>GUP flags (FOLL_*), Linux values.</summary>
    [Flags]
    public enum FollFlags
    {
        /// <summary>None.</summary>
        None = 0,
        /// <summary>FOLL_WRITE.</summary>
        Write = 0x01,
        /// <summary>FOLL_NOWAIT.</summary>
        NoWait = 0x20,
        /// <summary>FOLL_NOFAULT: do not fault pages in.</summary>
        NoFault = 0x80,
        /// <summary>FOLL_LONGTERM.</summary>
        LongTerm = 0x100,
    }
}
