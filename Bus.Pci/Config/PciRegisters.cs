namespace KernelModel.Pci.Config;

/// <summary>Offsets of the type 0 configuration header (include/uapi/linux/pci_regs.h).</summary>
public enum PciConfigOffset
{
    /// <summary>PCI_VENDOR_ID (16 bits).</summary>
    VendorId = 0x00,
    /// <summary>PCI_DEVICE_ID (16 bits).</summary>
    DeviceId = 0x02,
    /// <summary>PCI_COMMAND (16 bits).</summary>
    Command = 0x04,
    /// <summary>PCI_STATUS (16 bits).</summary>
    Status = 0x06,
    /// <summary>PCI_REVISION_ID (8 bits).</summary>
    RevisionId = 0x08,
    /// <summary>PCI_CLASS_PROG (8 bits): programming interface, the low byte of the class code.</summary>
    ClassProg = 0x09,
    /// <summary>PCI_CLASS_DEVICE (16 bits): class and subclass.</summary>
    ClassDevice = 0x0a,
    /// <summary>PCI_CACHE_LINE_SIZE (8 bits).</summary>
    CacheLineSize = 0x0c,
    /// <summary>PCI_LATENCY_TIMER (8 bits).</summary>
    LatencyTimer = 0x0d,
    /// <summary>PCI_HEADER_TYPE (8 bits); bit 7 marks a multi-function device.</summary>
    HeaderType = 0x0e,
    /// <summary>PCI_BIST (8 bits).</summary>
    Bist = 0x0f,
    /// <summary>PCI_BASE_ADDRESS_0 (32 bits); BARs 1..5 follow every 4 bytes.</summary>
    BaseAddress0 = 0x10,
    /// <summary>PCI_BASE_ADDRESS_5.</summary>
    BaseAddress5 = 0x24,
    /// <summary>PCI_CARDBUS_CIS.</summary>
    CardbusCis = 0x28,
    /// <summary>PCI_SUBSYSTEM_VENDOR_ID (16 bits).</summary>
    SubsystemVendorId = 0x2c,
    /// <summary>PCI_SUBSYSTEM_ID (16 bits).</summary>
    SubsystemId = 0x2e,
    /// <summary>PCI_ROM_ADDRESS (32 bits).</summary>
    RomAddress = 0x30,
    /// <summary>PCI_CAPABILITY_LIST (8 bits): offset of the first capability.</summary>
    CapabilityList = 0x34,
    /// <summary>PCI_INTERRUPT_LINE (8 bits).</summary>
    InterruptLine = 0x3c,
    /// <summary>PCI_INTERRUPT_PIN (8 bits): 0 none, 1..4 INTA..INTD.</summary>
    InterruptPin = 0x3d,
    /// <summary>PCI_MIN_GNT.</summary>
    MinGnt = 0x3e,
    /// <summary>PCI_MAX_LAT.</summary>
    MaxLat = 0x3f,
    /// <summary>PCI_STD_HEADER_SIZEOF: where capabilities may start.</summary>
    HeaderSize = 0x40,
}

/// <summary>PCI_COMMAND bits.</summary>
[Flags]
public enum PciCommand : ushort
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>PCI_COMMAND_IO: respond to I/O space accesses.</summary>
    Io = 1 << 0,
    /// <summary>PCI_COMMAND_MEMORY: respond to memory space accesses (BAR decode).</summary>
    Memory = 1 << 1,
    /// <summary>PCI_COMMAND_MASTER: the device may initiate DMA.</summary>
    Master = 1 << 2,
    /// <summary>PCI_COMMAND_SPECIAL.</summary>
    Special = 1 << 3,
    /// <summary>PCI_COMMAND_INVALIDATE.</summary>
    Invalidate = 1 << 4,
    /// <summary>PCI_COMMAND_VGA_PALETTE.</summary>
    VgaPalette = 1 << 5,
    /// <summary>PCI_COMMAND_PARITY.</summary>
    Parity = 1 << 6,
    /// <summary>PCI_COMMAND_WAIT.</summary>
    Wait = 1 << 7,
    /// <summary>PCI_COMMAND_SERR.</summary>
    Serr = 1 << 8,
    /// <summary>PCI_COMMAND_FAST_BACK.</summary>
    FastBack = 1 << 9,
    /// <summary>PCI_COMMAND_INTX_DISABLE: the function may not assert INTx.</summary>
    IntxDisable = 1 << 10,
}

/// <summary>PCI_STATUS bits.</summary>
[Flags]
public enum PciStatus : ushort
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>PCI_STATUS_INTERRUPT: INTx is asserted (read only).</summary>
    Interrupt = 1 << 3,
    /// <summary>PCI_STATUS_CAP_LIST: the capability list is valid.</summary>
    CapList = 1 << 4,
}

/// <summary>Bits of a BAR register.</summary>
[Flags]
public enum PciBarBits : uint
{
    /// <summary>PCI_BASE_ADDRESS_SPACE_MEMORY (0): a memory BAR.</summary>
    SpaceMemory = 0,
    /// <summary>PCI_BASE_ADDRESS_SPACE_IO: an I/O port BAR.</summary>
    SpaceIo = 1 << 0,
    /// <summary>PCI_BASE_ADDRESS_MEM_TYPE_64: the BAR and the next one form a 64-bit address.</summary>
    MemType64 = 1 << 2,
    /// <summary>PCI_BASE_ADDRESS_MEM_PREFETCH.</summary>
    Prefetch = 1 << 3,
    /// <summary>PCI_BASE_ADDRESS_MEM_MASK: the flag bits of a memory BAR.</summary>
    MemFlagsMask = 0xf,
    /// <summary>PCI_BASE_ADDRESS_IO_MASK complement: the flag bits of an I/O BAR.</summary>
    IoFlagsMask = 0x3,
    /// <summary>PCI_ROM_ADDRESS_ENABLE.</summary>
    RomEnable = 1 << 0,
}

/// <summary>Capability IDs (PCI_CAP_ID_*).</summary>
public enum PciCapId : byte
{
    /// <summary>PCI_CAP_ID_PM: power management.</summary>
    Pm = 0x01,
    /// <summary>PCI_CAP_ID_MSI.</summary>
    Msi = 0x05,
    /// <summary>PCI_CAP_ID_EXP: PCI Express.</summary>
    Exp = 0x10,
    /// <summary>PCI_CAP_ID_MSIX.</summary>
    Msix = 0x11,
}

/// <summary>Offsets inside every capability.</summary>
public enum PciCapOffset
{
    /// <summary>PCI_CAP_LIST_ID.</summary>
    Id = 0,
    /// <summary>PCI_CAP_LIST_NEXT.</summary>
    Next = 1,
}

/// <summary>Offsets inside the power management capability.</summary>
public enum PciPmOffset
{
    /// <summary>PCI_PM_PMC (16 bits).</summary>
    Pmc = 2,
    /// <summary>PCI_PM_CTRL (16 bits): PMCSR.</summary>
    Ctrl = 4,
    /// <summary>PCI_PM_SIZEOF.</summary>
    SizeOf = 8,
}

/// <summary>PCI_PM_CTRL bits.</summary>
[Flags]
public enum PciPmCtrl : ushort
{
    /// <summary>None (D0).</summary>
    None = 0,
    /// <summary>PCI_PM_CTRL_STATE_MASK: D0..D3hot.</summary>
    StateMask = 0x3,
    /// <summary>PCI_PM_CTRL_NO_SOFT_RESET: D3hot→D0 keeps the configuration.</summary>
    NoSoftReset = 0x8,
}

/// <summary>Offsets inside the MSI capability.</summary>
public enum PciMsiOffset
{
    /// <summary>PCI_MSI_FLAGS (16 bits).</summary>
    Flags = 2,
    /// <summary>PCI_MSI_ADDRESS_LO (32 bits).</summary>
    AddressLo = 4,
    /// <summary>PCI_MSI_ADDRESS_HI (32 bits), 64-bit capabilities only.</summary>
    AddressHi = 8,
    /// <summary>PCI_MSI_DATA_32: the data register of a 32-bit capability.</summary>
    Data32 = 8,
    /// <summary>PCI_MSI_DATA_64: the data register of a 64-bit capability.</summary>
    Data64 = 12,
}

/// <summary>PCI_MSI_FLAGS bits.</summary>
[Flags]
public enum PciMsiFlags : ushort
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>PCI_MSI_FLAGS_ENABLE.</summary>
    Enable = 1 << 0,
    /// <summary>PCI_MSI_FLAGS_QMASK: log2 of the vectors the function can send.</summary>
    QMask = 0x0e,
    /// <summary>PCI_MSI_FLAGS_QSIZE: log2 of the vectors the host enabled.</summary>
    QSize = 0x70,
    /// <summary>PCI_MSI_FLAGS_64BIT.</summary>
    Is64Bit = 1 << 7,
    /// <summary>PCI_MSI_FLAGS_MASKBIT: per-vector masking.</summary>
    MaskBit = 1 << 8,
}

/// <summary>Offsets inside the MSI-X capability.</summary>
public enum PciMsixOffset
{
    /// <summary>PCI_MSIX_FLAGS (16 bits).</summary>
    Flags = 2,
    /// <summary>PCI_MSIX_TABLE (32 bits): offset | BIR.</summary>
    Table = 4,
    /// <summary>PCI_MSIX_PBA (32 bits): offset | BIR.</summary>
    Pba = 8,
    /// <summary>PCI_CAP_MSIX_SIZEOF.</summary>
    SizeOf = 12,
}

/// <summary>PCI_MSIX_FLAGS bits.</summary>
[Flags]
public enum PciMsixFlags : ushort
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>PCI_MSIX_FLAGS_QSIZE: table size minus one.</summary>
    QSize = 0x07ff,
    /// <summary>PCI_MSIX_FLAGS_MASKALL.</summary>
    MaskAll = 1 << 14,
    /// <summary>PCI_MSIX_FLAGS_ENABLE.</summary>
    Enable = 1 << 15,
}

/// <summary>The BIR and offset fields of PCI_MSIX_TABLE and PCI_MSIX_PBA.</summary>
public enum PciMsixLocation : uint
{
    /// <summary>PCI_MSIX_TABLE_BIR.</summary>
    BirMask = 0x7,
    /// <summary>PCI_MSIX_TABLE_OFFSET.</summary>
    OffsetMask = 0xfffffff8,
}

/// <summary>Offsets inside the PCI Express capability.</summary>
public enum PciExpOffset
{
    /// <summary>PCI_EXP_FLAGS (16 bits): version and device type.</summary>
    Flags = 2,
    /// <summary>PCI_EXP_DEVCAP (32 bits).</summary>
    DevCap = 4,
    /// <summary>PCI_EXP_DEVCTL (16 bits).</summary>
    DevCtl = 8,
    /// <summary>PCI_EXP_DEVSTA (16 bits).</summary>
    DevSta = 10,
    /// <summary>PCI_EXP_LNKCAP (32 bits).</summary>
    LnkCap = 12,
    /// <summary>PCI_CAP_EXP_ENDPOINT_SIZEOF_V2: the size of an endpoint's v2 capability.</summary>
    SizeOf = 0x3c,
}

/// <summary>PCI_EXP_DEVCAP bits.</summary>
[Flags]
public enum PciExpDevCap : uint
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>PCI_EXP_DEVCAP_FLR: function level reset.</summary>
    Flr = 1u << 28,
}

/// <summary>PCI_EXP_DEVCTL bits.</summary>
[Flags]
public enum PciExpDevCtl : ushort
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>PCI_EXP_DEVCTL_BCR_FLR: writing 1 starts a function level reset; reads as 0.</summary>
    BcrFlr = 1 << 15,
}
