namespace KernelModel.Uapi;

/// <summary>
/// Every integer constant of linux/vfio.h (Linux 6.1), under its C name and with its C type: a plain number,
/// <c>(1 &lt;&lt; n)</c> or enumerator is a C <c>int</c> and is an <see cref="int"/> here; an ioctl number
/// (<c>_IO(...)</c>, unsigned in C) is a <see cref="uint"/>. Keeping C's types lets the conformance test check them,
/// and an <see cref="int"/> constant still converts implicitly to the <see cref="uint"/> struct fields it is used in.
/// The string constants (<c>VFIO_DEVICE_API_*_STRING</c>) and the v1 migration macros are here too.
/// </summary>
public static class VfioUapi
{
    // _IO(type, nr) from asm-generic/ioctl.h: direction none (0), size 0, type in bits 8..15, nr in bits 0..7.
    private const uint IOC_NONE = 0u;
    private const int IOC_NRSHIFT = 0;
    private const int IOC_TYPESHIFT = 8;
    private const int IOC_SIZESHIFT = 16;
    private const int IOC_DIRSHIFT = 30;

    // _IO(VFIO_TYPE, VFIO_BASE); nr is the low byte and VFIO_BASE + n stays below 256, so _IO(VFIO_TYPE, VFIO_BASE + n) == Io + n.
    private const uint Io = (IOC_NONE << IOC_DIRSHIFT) | (0u << IOC_SIZESHIFT)
        | ((uint)VFIO_TYPE << IOC_TYPESHIFT) | ((uint)VFIO_BASE << IOC_NRSHIFT);

    // ---- API version and extensions (VFIO_CHECK_EXTENSION / VFIO_SET_IOMMU arguments) ----

    /// <summary>The value VFIO_GET_API_VERSION returns.</summary>
    public const int VFIO_API_VERSION = 0;

    /// <summary>Extension: the type1 IOMMU backend.</summary>
    public const int VFIO_TYPE1_IOMMU = 1;

    /// <summary>Extension: the sPAPR TCE IOMMU backend.</summary>
    public const int VFIO_SPAPR_TCE_IOMMU = 2;

    /// <summary>Extension: type1 v2 (unmap of a partial mapping is refused, not split).</summary>
    public const int VFIO_TYPE1v2_IOMMU = 3;

    /// <summary>Extension: the IOMMU enforces DMA cache coherence.</summary>
    public const int VFIO_DMA_CC_IOMMU = 4;

    /// <summary>Extension: EEH (PowerPC error recovery) is supported.</summary>
    public const int VFIO_EEH = 5;

    /// <summary>Extension: type1 with nesting; implies v2.</summary>
    public const int VFIO_TYPE1_NESTING_IOMMU = 6;

    /// <summary>Extension: the sPAPR TCE v2 backend (memory preregistration, DDW).</summary>
    public const int VFIO_SPAPR_TCE_v2_IOMMU = 7;

    /// <summary>Extension: no IOMMU (unsafe, requires the noiommu module parameter).</summary>
    public const int VFIO_NOIOMMU_IOMMU = 8;

    /// <summary>Extension: VFIO_DMA_UNMAP_FLAG_ALL is supported.</summary>
    public const int VFIO_UNMAP_ALL = 9;

    /// <summary>Extension: VFIO_DMA_MAP_FLAG_VADDR / VFIO_DMA_UNMAP_FLAG_VADDR are supported.</summary>
    public const int VFIO_UPDATE_VADDR = 10;

    // ---- ioctl base ----

    /// <summary>The ioctl type byte, <c>';'</c> (0x3B).</summary>
    public const int VFIO_TYPE = ';';

    /// <summary>The first ioctl nr of vfio.</summary>
    public const int VFIO_BASE = 100;

    // ---- container ioctls ----

    /// <summary>ioctl on the container: returns VFIO_API_VERSION.</summary>
    public const uint VFIO_GET_API_VERSION = Io + 0;

    /// <summary>ioctl on the container: is the extension (integer argument) supported? Returns 0 or a positive value.</summary>
    public const uint VFIO_CHECK_EXTENSION = Io + 1;

    /// <summary>ioctl on the container: select the IOMMU backend (integer argument: an extension number).</summary>
    public const uint VFIO_SET_IOMMU = Io + 2;

    // ---- groups ----

    /// <summary>vfio_group_status.flags: every device of the group is bound to a vfio driver or none.</summary>
    public const int VFIO_GROUP_FLAGS_VIABLE = 1 << 0;

    /// <summary>vfio_group_status.flags: the group is attached to a container.</summary>
    public const int VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

    /// <summary>ioctl on a group: fill struct vfio_group_status.</summary>
    public const uint VFIO_GROUP_GET_STATUS = Io + 3;

    /// <summary>ioctl on a group: attach to the container whose fd is the int32 argument.</summary>
    public const uint VFIO_GROUP_SET_CONTAINER = Io + 4;

    /// <summary>ioctl on a group: detach from its container.</summary>
    public const uint VFIO_GROUP_UNSET_CONTAINER = Io + 5;

    /// <summary>ioctl on a group: open a device fd by name (NUL-terminated string argument).</summary>
    public const uint VFIO_GROUP_GET_DEVICE_FD = Io + 6;

    // ---- devices ----

    /// <summary>vfio_device_info.flags: the device supports VFIO_DEVICE_RESET.</summary>
    public const int VFIO_DEVICE_FLAGS_RESET = 1 << 0;

    /// <summary>vfio_device_info.flags: a vfio-pci device.</summary>
    public const int VFIO_DEVICE_FLAGS_PCI = 1 << 1;

    /// <summary>vfio_device_info.flags: a vfio-platform device.</summary>
    public const int VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;

    /// <summary>vfio_device_info.flags: a vfio-amba device.</summary>
    public const int VFIO_DEVICE_FLAGS_AMBA = 1 << 3;

    /// <summary>vfio_device_info.flags: a vfio-ccw device.</summary>
    public const int VFIO_DEVICE_FLAGS_CCW = 1 << 4;

    /// <summary>vfio_device_info.flags: a vfio-ap device.</summary>
    public const int VFIO_DEVICE_FLAGS_AP = 1 << 5;

    /// <summary>vfio_device_info.flags: a vfio-fsl-mc device.</summary>
    public const int VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;

    /// <summary>vfio_device_info.flags: the info has a capability chain at cap_offset.</summary>
    public const int VFIO_DEVICE_FLAGS_CAPS = 1 << 7;

    /// <summary>ioctl on a device: fill struct vfio_device_info.</summary>
    public const uint VFIO_DEVICE_GET_INFO = Io + 7;

    /// <summary>The device_api sysfs/mdev string of vfio-pci.</summary>
    public const string VFIO_DEVICE_API_PCI_STRING = "vfio-pci";

    /// <summary>The device_api string of vfio-platform.</summary>
    public const string VFIO_DEVICE_API_PLATFORM_STRING = "vfio-platform";

    /// <summary>The device_api string of vfio-amba.</summary>
    public const string VFIO_DEVICE_API_AMBA_STRING = "vfio-amba";

    /// <summary>The device_api string of vfio-ccw.</summary>
    public const string VFIO_DEVICE_API_CCW_STRING = "vfio-ccw";

    /// <summary>The device_api string of vfio-ap.</summary>
    public const string VFIO_DEVICE_API_AP_STRING = "vfio-ap";

    /// <summary>Device info capability ID: zPCI base (s390).</summary>
    public const int VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1;

    /// <summary>Device info capability ID: zPCI function group (s390).</summary>
    public const int VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2;

    /// <summary>Device info capability ID: zPCI utility string (s390).</summary>
    public const int VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3;

    /// <summary>Device info capability ID: zPCI function path (s390).</summary>
    public const int VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4;

    // ---- regions ----

    /// <summary>vfio_region_info.flags: the region supports read.</summary>
    public const int VFIO_REGION_INFO_FLAG_READ = 1 << 0;

    /// <summary>vfio_region_info.flags: the region supports write.</summary>
    public const int VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;

    /// <summary>vfio_region_info.flags: the region supports mmap.</summary>
    public const int VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;

    /// <summary>vfio_region_info.flags: the info has a capability chain at cap_offset.</summary>
    public const int VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;

    /// <summary>ioctl on a device: fill struct vfio_region_info for the index given.</summary>
    public const uint VFIO_DEVICE_GET_REGION_INFO = Io + 8;

    /// <summary>Region capability ID: struct vfio_region_info_cap_sparse_mmap.</summary>
    public const int VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;

    /// <summary>Region capability ID: struct vfio_region_info_cap_type.</summary>
    public const int VFIO_REGION_INFO_CAP_TYPE = 2;

    /// <summary>
    /// Region type bit: the low 16 bits are a PCI vendor ID. C's <c>(1 &lt;&lt; 31)</c> is an <c>int</c> (INT_MIN under gcc);
    /// OR it into the <c>__u32</c> type field as <c>unchecked((uint)VFIO_REGION_TYPE_PCI_VENDOR_TYPE)</c>.
    /// </summary>
    public const int VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 1 << 31;

    /// <summary>Region type: mask of the PCI vendor ID in a vendor type.</summary>
    public const int VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xffff;

    /// <summary>Region type: graphics.</summary>
    public const int VFIO_REGION_TYPE_GFX = 1;

    /// <summary>Region type: s390 channel I/O.</summary>
    public const int VFIO_REGION_TYPE_CCW = 2;

    /// <summary>Region type: v1 migration region (deprecated).</summary>
    public const int VFIO_REGION_TYPE_MIGRATION_DEPRECATED = 3;

    /// <summary>Region subtype (Intel vendor type): IGD OpRegion.</summary>
    public const int VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION = 1;

    /// <summary>Region subtype (Intel vendor type): IGD host bridge config space.</summary>
    public const int VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG = 2;

    /// <summary>Region subtype (Intel vendor type): IGD LPC bridge config space.</summary>
    public const int VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG = 3;

    /// <summary>Region subtype (NVIDIA vendor type): NVLink2 GPU RAM.</summary>
    public const int VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM = 1;

    /// <summary>Region subtype (IBM vendor type): NVLink2 ATSD registers.</summary>
    public const int VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD = 1;

    /// <summary>Region subtype of VFIO_REGION_TYPE_GFX: EDID (struct vfio_region_gfx_edid).</summary>
    public const int VFIO_REGION_SUBTYPE_GFX_EDID = 1;

    /// <summary>vfio_region_gfx_edid.link_state: link up.</summary>
    public const int VFIO_DEVICE_GFX_LINK_STATE_UP = 1;

    /// <summary>vfio_region_gfx_edid.link_state: link down.</summary>
    public const int VFIO_DEVICE_GFX_LINK_STATE_DOWN = 2;

    /// <summary>Region subtype of VFIO_REGION_TYPE_CCW: asynchronous command region.</summary>
    public const int VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD = 1;

    /// <summary>Region subtype of VFIO_REGION_TYPE_CCW: subchannel information block.</summary>
    public const int VFIO_REGION_SUBTYPE_CCW_SCHIB = 2;

    /// <summary>Region subtype of VFIO_REGION_TYPE_CCW: channel report words.</summary>
    public const int VFIO_REGION_SUBTYPE_CCW_CRW = 3;

    /// <summary>Region subtype of VFIO_REGION_TYPE_MIGRATION_DEPRECATED: struct vfio_device_migration_info.</summary>
    public const int VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED = 1;

    /// <summary>v1 migration device_state: stopped.</summary>
    public const int VFIO_DEVICE_STATE_V1_STOP = 0;

    /// <summary>v1 migration device_state bit: running.</summary>
    public const int VFIO_DEVICE_STATE_V1_RUNNING = 1 << 0;

    /// <summary>v1 migration device_state bit: saving.</summary>
    public const int VFIO_DEVICE_STATE_V1_SAVING = 1 << 1;

    /// <summary>v1 migration device_state bit: resuming.</summary>
    public const int VFIO_DEVICE_STATE_V1_RESUMING = 1 << 2;

    /// <summary>v1 migration: mask of the three device_state bits.</summary>
    public const int VFIO_DEVICE_STATE_MASK = VFIO_DEVICE_STATE_V1_RUNNING | VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING;

    /// <summary>The macro VFIO_DEVICE_STATE_VALID(state): resuming may not be combined with another bit. Returns 1 or 0, like C.</summary>
    /// <param name="state">A v1 device_state.</param>
    public static int VFIO_DEVICE_STATE_VALID(uint state) =>
        (state & VFIO_DEVICE_STATE_V1_RESUMING) != 0
            ? ((state & VFIO_DEVICE_STATE_MASK) == VFIO_DEVICE_STATE_V1_RESUMING ? 1 : 0)
            : 1;

    /// <summary>The macro VFIO_DEVICE_STATE_IS_ERROR(state): saving and resuming together mean error. Returns 1 or 0, like C.</summary>
    /// <param name="state">A v1 device_state.</param>
    public static int VFIO_DEVICE_STATE_IS_ERROR(uint state) =>
        (state & VFIO_DEVICE_STATE_MASK) == (VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING) ? 1 : 0;

    /// <summary>The macro VFIO_DEVICE_STATE_SET_ERROR(state): keep the bits outside the mask and set saving|resuming.</summary>
    /// <param name="state">A v1 device_state.</param>
    public static uint VFIO_DEVICE_STATE_SET_ERROR(uint state) =>
        (state & ~(uint)VFIO_DEVICE_STATE_MASK) | VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING;

    /// <summary>Region capability ID: MSI-X table may be mmapped (no data beyond the header).</summary>
    public const int VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;

    /// <summary>Region capability ID: struct vfio_region_info_cap_nvlink2_ssatgt.</summary>
    public const int VFIO_REGION_INFO_CAP_NVLINK2_SSATGT = 4;

    /// <summary>Region capability ID: struct vfio_region_info_cap_nvlink2_lnkspd.</summary>
    public const int VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD = 5;

    // ---- interrupts ----

    /// <summary>vfio_irq_info.flags: signalled through an eventfd.</summary>
    public const int VFIO_IRQ_INFO_EVENTFD = 1 << 0;

    /// <summary>vfio_irq_info.flags: supports mask/unmask.</summary>
    public const int VFIO_IRQ_INFO_MASKABLE = 1 << 1;

    /// <summary>vfio_irq_info.flags: level-triggered, masked automatically when it fires.</summary>
    public const int VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;

    /// <summary>vfio_irq_info.flags: the count cannot be changed without disabling first.</summary>
    public const int VFIO_IRQ_INFO_NORESIZE = 1 << 3;

    /// <summary>ioctl on a device: fill struct vfio_irq_info for the index given.</summary>
    public const uint VFIO_DEVICE_GET_IRQ_INFO = Io + 9;

    /// <summary>vfio_irq_set.flags: no data follows.</summary>
    public const int VFIO_IRQ_SET_DATA_NONE = 1 << 0;

    /// <summary>vfio_irq_set.flags: data is count u8 booleans.</summary>
    public const int VFIO_IRQ_SET_DATA_BOOL = 1 << 1;

    /// <summary>vfio_irq_set.flags: data is count s32 eventfds (-1 to de-assign).</summary>
    public const int VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;

    /// <summary>vfio_irq_set.flags: action mask.</summary>
    public const int VFIO_IRQ_SET_ACTION_MASK = 1 << 3;

    /// <summary>vfio_irq_set.flags: action unmask.</summary>
    public const int VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;

    /// <summary>vfio_irq_set.flags: action trigger.</summary>
    public const int VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;

    /// <summary>ioctl on a device: apply struct vfio_irq_set.</summary>
    public const uint VFIO_DEVICE_SET_IRQS = Io + 10;

    /// <summary>vfio_irq_set.flags: mask of the data-type bits (exactly one must be set).</summary>
    public const int VFIO_IRQ_SET_DATA_TYPE_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;

    /// <summary>vfio_irq_set.flags: mask of the action bits (exactly one must be set).</summary>
    public const int VFIO_IRQ_SET_ACTION_TYPE_MASK = VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

    /// <summary>ioctl on a device: reset it.</summary>
    public const uint VFIO_DEVICE_RESET = Io + 11;

    // ---- vfio-pci region and IRQ indexes (anonymous enums in C, so int) ----

    /// <summary>vfio-pci region index of BAR 0.</summary>
    public const int VFIO_PCI_BAR0_REGION_INDEX = 0;

    /// <summary>vfio-pci region index of BAR 1.</summary>
    public const int VFIO_PCI_BAR1_REGION_INDEX = 1;

    /// <summary>vfio-pci region index of BAR 2.</summary>
    public const int VFIO_PCI_BAR2_REGION_INDEX = 2;

    /// <summary>vfio-pci region index of BAR 3.</summary>
    public const int VFIO_PCI_BAR3_REGION_INDEX = 3;

    /// <summary>vfio-pci region index of BAR 4.</summary>
    public const int VFIO_PCI_BAR4_REGION_INDEX = 4;

    /// <summary>vfio-pci region index of BAR 5.</summary>
    public const int VFIO_PCI_BAR5_REGION_INDEX = 5;

    /// <summary>vfio-pci region index of the expansion ROM.</summary>
    public const int VFIO_PCI_ROM_REGION_INDEX = 6;

    /// <summary>vfio-pci region index of config space.</summary>
    public const int VFIO_PCI_CONFIG_REGION_INDEX = 7;

    /// <summary>vfio-pci region index of the legacy VGA ranges.</summary>
    public const int VFIO_PCI_VGA_REGION_INDEX = 8;

    /// <summary>Number of fixed vfio-pci regions; indexes from here on are described by capabilities.</summary>
    public const int VFIO_PCI_NUM_REGIONS = 9;

    /// <summary>vfio-pci IRQ index of INTx.</summary>
    public const int VFIO_PCI_INTX_IRQ_INDEX = 0;

    /// <summary>vfio-pci IRQ index of MSI.</summary>
    public const int VFIO_PCI_MSI_IRQ_INDEX = 1;

    /// <summary>vfio-pci IRQ index of MSI-X.</summary>
    public const int VFIO_PCI_MSIX_IRQ_INDEX = 2;

    /// <summary>vfio-pci IRQ index of the AER error notification.</summary>
    public const int VFIO_PCI_ERR_IRQ_INDEX = 3;

    /// <summary>vfio-pci IRQ index of the device request (release) notification.</summary>
    public const int VFIO_PCI_REQ_IRQ_INDEX = 4;

    /// <summary>Number of vfio-pci IRQ indexes.</summary>
    public const int VFIO_PCI_NUM_IRQS = 5;

    /// <summary>vfio-ccw region index of the I/O region.</summary>
    public const int VFIO_CCW_CONFIG_REGION_INDEX = 0;

    /// <summary>Number of fixed vfio-ccw regions.</summary>
    public const int VFIO_CCW_NUM_REGIONS = 1;

    /// <summary>vfio-ccw IRQ index of I/O completion.</summary>
    public const int VFIO_CCW_IO_IRQ_INDEX = 0;

    /// <summary>vfio-ccw IRQ index of channel reports.</summary>
    public const int VFIO_CCW_CRW_IRQ_INDEX = 1;

    /// <summary>vfio-ccw IRQ index of the device request notification.</summary>
    public const int VFIO_CCW_REQ_IRQ_INDEX = 2;

    /// <summary>Number of vfio-ccw IRQ indexes.</summary>
    public const int VFIO_CCW_NUM_IRQS = 3;

    // ---- PCI hot reset ----

    /// <summary>ioctl on a vfio-pci device: fill struct vfio_pci_hot_reset_info with the devices a bus reset affects.</summary>
    public const uint VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = Io + 12;

    /// <summary>ioctl on a vfio-pci device: bus reset, proving ownership with struct vfio_pci_hot_reset.</summary>
    public const uint VFIO_DEVICE_PCI_HOT_RESET = Io + 13;

    // ---- graphics ----

    /// <summary>vfio_device_gfx_plane_info.flags: probe whether the plane type is supported.</summary>
    public const int VFIO_GFX_PLANE_TYPE_PROBE = 1 << 0;

    /// <summary>vfio_device_gfx_plane_info.flags: the plane is exported as a dma-buf.</summary>
    public const int VFIO_GFX_PLANE_TYPE_DMABUF = 1 << 1;

    /// <summary>vfio_device_gfx_plane_info.flags: the plane lives in a device region.</summary>
    public const int VFIO_GFX_PLANE_TYPE_REGION = 1 << 2;

    /// <summary>ioctl on a device: fill struct vfio_device_gfx_plane_info.</summary>
    public const uint VFIO_DEVICE_QUERY_GFX_PLANE = Io + 14;

    /// <summary>ioctl on a device: return a dma-buf fd for the dmabuf_id (u32 argument).</summary>
    public const uint VFIO_DEVICE_GET_GFX_DMABUF = Io + 15;

    // ---- ioeventfd ----

    /// <summary>vfio_device_ioeventfd.flags: 1-byte write.</summary>
    public const int VFIO_DEVICE_IOEVENTFD_8 = 1 << 0;

    /// <summary>vfio_device_ioeventfd.flags: 2-byte write.</summary>
    public const int VFIO_DEVICE_IOEVENTFD_16 = 1 << 1;

    /// <summary>vfio_device_ioeventfd.flags: 4-byte write.</summary>
    public const int VFIO_DEVICE_IOEVENTFD_32 = 1 << 2;

    /// <summary>vfio_device_ioeventfd.flags: 8-byte write.</summary>
    public const int VFIO_DEVICE_IOEVENTFD_64 = 1 << 3;

    /// <summary>vfio_device_ioeventfd.flags: mask of the size bits.</summary>
    public const int VFIO_DEVICE_IOEVENTFD_SIZE_MASK = 0xf;

    /// <summary>ioctl on a device: apply struct vfio_device_ioeventfd.</summary>
    public const uint VFIO_DEVICE_IOEVENTFD = Io + 16;

    // ---- device features ----

    /// <summary>vfio_device_feature.flags: mask of the 16-bit feature index.</summary>
    public const int VFIO_DEVICE_FEATURE_MASK = 0xffff;

    /// <summary>vfio_device_feature.flags: get the feature into data[].</summary>
    public const int VFIO_DEVICE_FEATURE_GET = 1 << 16;

    /// <summary>vfio_device_feature.flags: set the feature from data[].</summary>
    public const int VFIO_DEVICE_FEATURE_SET = 1 << 17;

    /// <summary>vfio_device_feature.flags: only probe whether the feature is supported.</summary>
    public const int VFIO_DEVICE_FEATURE_PROBE = 1 << 18;

    /// <summary>ioctl on a device: get/set/probe struct vfio_device_feature.</summary>
    public const uint VFIO_DEVICE_FEATURE = Io + 17;

    /// <summary>Feature index: the SR-IOV VF token (a 16-byte UUID in data[]).</summary>
    public const int VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;

    /// <summary>vfio_device_feature_migration.flags: STOP_COPY migration is supported.</summary>
    public const int VFIO_MIGRATION_STOP_COPY = 1 << 0;

    /// <summary>vfio_device_feature_migration.flags: the RUNNING_P2P state is supported.</summary>
    public const int VFIO_MIGRATION_P2P = 1 << 1;

    /// <summary>Feature index: struct vfio_device_feature_migration.</summary>
    public const int VFIO_DEVICE_FEATURE_MIGRATION = 1;

    /// <summary>Feature index: struct vfio_device_feature_mig_state.</summary>
    public const int VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;

    /// <summary>enum vfio_device_mig_state: error; only a reset leaves it.</summary>
    public const int VFIO_DEVICE_STATE_ERROR = 0;

    /// <summary>enum vfio_device_mig_state: stopped.</summary>
    public const int VFIO_DEVICE_STATE_STOP = 1;

    /// <summary>enum vfio_device_mig_state: running.</summary>
    public const int VFIO_DEVICE_STATE_RUNNING = 2;

    /// <summary>enum vfio_device_mig_state: stopped, streaming its state out through data_fd.</summary>
    public const int VFIO_DEVICE_STATE_STOP_COPY = 3;

    /// <summary>enum vfio_device_mig_state: stopped, loading its state from data_fd.</summary>
    public const int VFIO_DEVICE_STATE_RESUMING = 4;

    /// <summary>enum vfio_device_mig_state: running but not initiating peer-to-peer DMA.</summary>
    public const int VFIO_DEVICE_STATE_RUNNING_P2P = 5;

    /// <summary>Feature index: enter low-power state (no data).</summary>
    public const int VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;

    /// <summary>Feature index: enter low-power state, signalling wakeup on an eventfd (struct vfio_device_low_power_entry_with_wakeup).</summary>
    public const int VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;

    /// <summary>Feature index: exit low-power state.</summary>
    public const int VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;

    /// <summary>Feature index: start device DMA dirty logging (struct vfio_device_feature_dma_logging_control).</summary>
    public const int VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;

    /// <summary>Feature index: stop device DMA dirty logging.</summary>
    public const int VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;

    /// <summary>Feature index: read the dirty bitmap (struct vfio_device_feature_dma_logging_report).</summary>
    public const int VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;

    // ---- type1 IOMMU ----

    /// <summary>vfio_iommu_type1_info.flags: iova_pgsizes is valid.</summary>
    public const int VFIO_IOMMU_INFO_PGSIZES = 1 << 0;

    /// <summary>vfio_iommu_type1_info.flags: the info has a capability chain at cap_offset.</summary>
    public const int VFIO_IOMMU_INFO_CAPS = 1 << 1;

    /// <summary>Type1 info capability ID: struct vfio_iommu_type1_info_cap_iova_range.</summary>
    public const int VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;

    /// <summary>Type1 info capability ID: struct vfio_iommu_type1_info_cap_migration.</summary>
    public const int VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;

    /// <summary>Type1 info capability ID: struct vfio_iommu_type1_info_dma_avail.</summary>
    public const int VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

    /// <summary>ioctl on a type1 container: fill struct vfio_iommu_type1_info.</summary>
    public const uint VFIO_IOMMU_GET_INFO = Io + 12;

    /// <summary>vfio_iommu_type1_dma_map.flags: the device may read.</summary>
    public const int VFIO_DMA_MAP_FLAG_READ = 1 << 0;

    /// <summary>vfio_iommu_type1_dma_map.flags: the device may write.</summary>
    public const int VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;

    /// <summary>vfio_iommu_type1_dma_map.flags: only update the vaddr of an existing mapping.</summary>
    public const int VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;

    /// <summary>ioctl on a type1 container: map struct vfio_iommu_type1_dma_map.</summary>
    public const uint VFIO_IOMMU_MAP_DMA = Io + 13;

    /// <summary>vfio_iommu_type1_dma_unmap.flags: return the dirty bitmap (struct vfio_bitmap in data[]).</summary>
    public const int VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;

    /// <summary>vfio_iommu_type1_dma_unmap.flags: unmap everything (iova and size must be 0).</summary>
    public const int VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;

    /// <summary>vfio_iommu_type1_dma_unmap.flags: invalidate the vaddr, keeping the mapping.</summary>
    public const int VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;

    /// <summary>ioctl on a type1 container: unmap struct vfio_iommu_type1_dma_unmap; size is updated to what was unmapped.</summary>
    public const uint VFIO_IOMMU_UNMAP_DMA = Io + 14;

    /// <summary>ioctl on an sPAPR container: enable the IOMMU.</summary>
    public const uint VFIO_IOMMU_ENABLE = Io + 15;

    /// <summary>ioctl on an sPAPR container: disable the IOMMU.</summary>
    public const uint VFIO_IOMMU_DISABLE = Io + 16;

    /// <summary>vfio_iommu_type1_dirty_bitmap.flags: start dirty tracking.</summary>
    public const int VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0;

    /// <summary>vfio_iommu_type1_dirty_bitmap.flags: stop dirty tracking.</summary>
    public const int VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1;

    /// <summary>vfio_iommu_type1_dirty_bitmap.flags: get the bitmap (struct vfio_iommu_type1_dirty_bitmap_get in data[]).</summary>
    public const int VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2;

    /// <summary>ioctl on a type1 container: struct vfio_iommu_type1_dirty_bitmap.</summary>
    public const uint VFIO_IOMMU_DIRTY_PAGES = Io + 17;

    // ---- sPAPR TCE IOMMU ----

    /// <summary>vfio_iommu_spapr_tce_info.flags: dynamic DMA windows are supported (ddw is valid).</summary>
    public const int VFIO_IOMMU_SPAPR_INFO_DDW = 1 << 0;

    /// <summary>ioctl on an sPAPR container: fill struct vfio_iommu_spapr_tce_info.</summary>
    public const uint VFIO_IOMMU_SPAPR_TCE_GET_INFO = Io + 12;

    /// <summary>vfio_eeh_pe_op.op: disable EEH.</summary>
    public const int VFIO_EEH_PE_DISABLE = 0;

    /// <summary>vfio_eeh_pe_op.op: enable EEH.</summary>
    public const int VFIO_EEH_PE_ENABLE = 1;

    /// <summary>vfio_eeh_pe_op.op: enable I/O of a frozen PE.</summary>
    public const int VFIO_EEH_PE_UNFREEZE_IO = 2;

    /// <summary>vfio_eeh_pe_op.op: enable DMA of a frozen PE.</summary>
    public const int VFIO_EEH_PE_UNFREEZE_DMA = 3;

    /// <summary>vfio_eeh_pe_op.op: return the PE state.</summary>
    public const int VFIO_EEH_PE_GET_STATE = 4;

    /// <summary>PE state: functional.</summary>
    public const int VFIO_EEH_PE_STATE_NORMAL = 0;

    /// <summary>PE state: reset in progress.</summary>
    public const int VFIO_EEH_PE_STATE_RESET = 1;

    /// <summary>PE state: DMA and I/O stopped.</summary>
    public const int VFIO_EEH_PE_STATE_STOPPED = 2;

    /// <summary>PE state: DMA stopped only.</summary>
    public const int VFIO_EEH_PE_STATE_STOPPED_DMA = 4;

    /// <summary>PE state: unavailable.</summary>
    public const int VFIO_EEH_PE_STATE_UNAVAIL = 5;

    /// <summary>vfio_eeh_pe_op.op: deassert PE reset.</summary>
    public const int VFIO_EEH_PE_RESET_DEACTIVATE = 5;

    /// <summary>vfio_eeh_pe_op.op: assert hot reset.</summary>
    public const int VFIO_EEH_PE_RESET_HOT = 6;

    /// <summary>vfio_eeh_pe_op.op: assert fundamental reset.</summary>
    public const int VFIO_EEH_PE_RESET_FUNDAMENTAL = 7;

    /// <summary>vfio_eeh_pe_op.op: configure the PE after reset.</summary>
    public const int VFIO_EEH_PE_CONFIGURE = 8;

    /// <summary>vfio_eeh_pe_op.op: inject an error (struct vfio_eeh_pe_err).</summary>
    public const int VFIO_EEH_PE_INJECT_ERR = 9;

    /// <summary>ioctl on an sPAPR container: struct vfio_eeh_pe_op.</summary>
    public const uint VFIO_EEH_PE_OP = Io + 21;

    /// <summary>ioctl on an sPAPR v2 container: preregister memory (struct vfio_iommu_spapr_register_memory).</summary>
    public const uint VFIO_IOMMU_SPAPR_REGISTER_MEMORY = Io + 17;

    /// <summary>ioctl on an sPAPR v2 container: unregister preregistered memory.</summary>
    public const uint VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = Io + 18;

    /// <summary>ioctl on an sPAPR v2 container: create a DMA window (struct vfio_iommu_spapr_tce_create).</summary>
    public const uint VFIO_IOMMU_SPAPR_TCE_CREATE = Io + 19;

    /// <summary>ioctl on an sPAPR v2 container: remove a DMA window (struct vfio_iommu_spapr_tce_remove).</summary>
    public const uint VFIO_IOMMU_SPAPR_TCE_REMOVE = Io + 20;
}
