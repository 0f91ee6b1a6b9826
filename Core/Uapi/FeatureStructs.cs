using System.Runtime.InteropServices;

namespace KernelModel.Uapi;

/// <summary>
/// struct vfio_device_feature: VFIO_DEVICE_FEATURE. The C struct ends with <c>__u8 data[]</c> at offset 8 (= sizeof),
/// whose layout depends on the feature index in flags.
/// </summary>
[CName("vfio_device_feature")]
[FlexibleArray("data", typeof(byte), 8)]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceFeature
{
    /// <summary>Size of the user buffer, including data[].</summary>
    [CName("argsz")] public uint Argsz;

    /// <summary>Feature index (VFIO_DEVICE_FEATURE_MASK) and one of GET/SET/PROBE.</summary>
    [CName("flags")] public uint Flags;
}

/// <summary>struct vfio_device_feature_migration: data of VFIO_DEVICE_FEATURE_MIGRATION.</summary>
[CName("vfio_device_feature_migration")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceFeatureMigration
{
    /// <summary>VFIO_MIGRATION_* (an __aligned_u64).</summary>
    [CName("flags")] public ulong Flags;
}

/// <summary>struct vfio_device_feature_mig_state: data of VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE.</summary>
[CName("vfio_device_feature_mig_state")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceFeatureMigState
{
    /// <summary>A VFIO_DEVICE_STATE_* value of enum vfio_device_mig_state.</summary>
    [CName("device_state")] public uint DeviceState;

    /// <summary>Data fd for STOP_COPY/RESUMING transitions (out), else -1.</summary>
    [CName("data_fd")] public int DataFd;
}

/// <summary>struct vfio_device_low_power_entry_with_wakeup: data of VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP.</summary>
[CName("vfio_device_low_power_entry_with_wakeup")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceLowPowerEntryWithWakeup
{
    /// <summary>eventfd signalled when the device wakes up.</summary>
    [CName("wakeup_eventfd")] public int WakeupEventfd;

    /// <summary>Reserved.</summary>
    [CName("reserved")] public uint Reserved;
}

/// <summary>struct vfio_device_feature_dma_logging_control: data of VFIO_DEVICE_FEATURE_DMA_LOGGING_START.</summary>
[CName("vfio_device_feature_dma_logging_control")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceFeatureDmaLoggingControl
{
    /// <summary>Tracking granule in bytes.</summary>
    [CName("page_size")] public ulong PageSize;

    /// <summary>Number of entries at <see cref="Ranges"/>.</summary>
    [CName("num_ranges")] public uint NumRanges;

    /// <summary>Reserved (C <c>__reserved</c>).</summary>
    [CName("__reserved")] public uint Reserved;

    /// <summary>User address of an array of struct vfio_device_feature_dma_logging_range.</summary>
    [CName("ranges")] public ulong Ranges;
}

/// <summary>struct vfio_device_feature_dma_logging_range: one IOVA range to track.</summary>
[CName("vfio_device_feature_dma_logging_range")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceFeatureDmaLoggingRange
{
    /// <summary>Start IOVA.</summary>
    [CName("iova")] public ulong Iova;

    /// <summary>Length in bytes.</summary>
    [CName("length")] public ulong Length;
}

/// <summary>struct vfio_device_feature_dma_logging_report: data of VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT.</summary>
[CName("vfio_device_feature_dma_logging_report")]
[StructLayout(LayoutKind.Sequential)]
public struct VfioDeviceFeatureDmaLoggingReport
{
    /// <summary>Start IOVA.</summary>
    [CName("iova")] public ulong Iova;

    /// <summary>Length in bytes.</summary>
    [CName("length")] public ulong Length;

    /// <summary>Granule of one bitmap bit.</summary>
    [CName("page_size")] public ulong PageSize;

    /// <summary>User address of the bitmap to fill.</summary>
    [CName("bitmap")] public ulong Bitmap;
}
