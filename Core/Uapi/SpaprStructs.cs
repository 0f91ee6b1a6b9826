using System.Runtime.InteropServices;

namespace KernelModel.Uapi;

/// <summary>struct vfio_iommu_spapr_tce_ddw_info: dynamic DMA window capabilities.</summary>
[CName("vfio_iommu_spapr_tce_ddw_info")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuSpaprTceDdwInfo
{
    /// <summary>Bitmap of supported page sizes.</summary>
    [CName("pgsizes")] public ulong Pgsizes;

    /// <summary>Number of dynamic windows the platform supports.</summary>
    [CName("max_dynamic_windows_supported")] public uint MaxDynamicWindowsSupported;

    /// <summary>Number of TCE table levels supported.</summary>
    [CName("levels")] public uint Levels;
}

/// <summary>struct vfio_iommu_spapr_tce_info: VFIO_IOMMU_SPAPR_TCE_GET_INFO.</summary>
[CName("vfio_iommu_spapr_tce_info")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuSpaprTceInfo
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>VFIO_IOMMU_SPAPR_INFO_DDW.</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Start of the default 32-bit DMA window, in bytes.</summary>
    [CName("dma32_window_start")] public uint Dma32WindowStart;

    /// <summary>Size of the default 32-bit DMA window, in bytes.</summary>
    [CName("dma32_window_size")] public uint Dma32WindowSize;

    /// <summary>Dynamic DMA window info (valid with VFIO_IOMMU_SPAPR_INFO_DDW).</summary>
    [CName("ddw")] public VfioIommuSpaprTceDdwInfo Ddw;
}

/// <summary>struct vfio_eeh_pe_err: the error to inject with VFIO_EEH_PE_INJECT_ERR.</summary>
[CName("vfio_eeh_pe_err")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioEehPeErr
{
    /// <summary>Error type.</summary>
    [CName("type")] public uint Type;

    /// <summary>Error function.</summary>
    [CName("func")] public uint Func;

    /// <summary>Address.</summary>
    [CName("addr")] public ulong Addr;

    /// <summary>Address mask.</summary>
    [CName("mask")] public ulong Mask;
}

/// <summary>
/// struct vfio_eeh_pe_op: VFIO_EEH_PE_OP. The C struct ends with an anonymous union holding only <c>err</c>, which the
/// 8-byte alignment of its __u64 members places at offset 16.
/// </summary>
[CName("vfio_eeh_pe_op")]
[StructLayout(LayoutKind.Explicit, Size = 40)]
public struct VfioEehPeOp
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")][FieldOffset(0)] public uint Argsz;

    /// <summary>Flags (none defined).</summary>
    [CName("flags")][FieldOffset(4)] public uint Flags;

    /// <summary>VFIO_EEH_PE_* operation.</summary>
    [CName("op")][FieldOffset(8)] public uint Op;

    /// <summary>Error to inject (VFIO_EEH_PE_INJECT_ERR); the only member of the C union.</summary>
    [CName("err")][FieldOffset(16)] public VfioEehPeErr Err;
}

/// <summary>struct vfio_iommu_spapr_register_memory: VFIO_IOMMU_SPAPR_REGISTER_MEMORY / UNREGISTER_MEMORY.</summary>
[CName("vfio_iommu_spapr_register_memory")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuSpaprRegisterMemory
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>Flags (none defined).</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Process virtual address.</summary>
    [CName("vaddr")] public ulong Vaddr;

    /// <summary>Size in bytes.</summary>
    [CName("size")] public ulong Size;
}

/// <summary>struct vfio_iommu_spapr_tce_create: VFIO_IOMMU_SPAPR_TCE_CREATE.</summary>
[CName("vfio_iommu_spapr_tce_create")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuSpaprTceCreate
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>Flags (none defined).</summary>
    [CName("flags")] public uint Flags;

    /// <summary>IOMMU page shift of the window (in).</summary>
    [CName("page_shift")] public uint PageShift;

    /// <summary>Reserved (C <c>__resv1</c>).</summary>
    [CName("__resv1")] public uint Resv1;

    /// <summary>Window size in bytes (in).</summary>
    [CName("window_size")] public ulong WindowSize;

    /// <summary>TCE table levels (in).</summary>
    [CName("levels")] public uint Levels;

    /// <summary>Reserved (C <c>__resv2</c>).</summary>
    [CName("__resv2")] public uint Resv2;

    /// <summary>Bus address of the new window (out).</summary>
    [CName("start_addr")] public ulong StartAddr;
}

/// <summary>struct vfio_iommu_spapr_tce_remove: VFIO_IOMMU_SPAPR_TCE_REMOVE.</summary>
[CName("vfio_iommu_spapr_tce_remove")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioIommuSpaprTceRemove
{
    /// <summary>Size of the user buffer.</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>Flags (none defined).</summary>
    [CName("flags")] public uint Flags;

    /// <summary>Bus address of the window to remove (in).</summary>
    [CName("start_addr")] public ulong StartAddr;
}
