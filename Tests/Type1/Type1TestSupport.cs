using System.Buffers.Binary;
using KernelModel.Iommu;
using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Tests.Vfio;
using KernelModel.Vfio;

namespace KernelModel.Tests.Type1;

/// <summary>
/// A vfio device for type1 tests, standing in for a bus driver (none exists in-tree yet): region i
/// is the device's i-th MMIO range, encoded in vm_pgoff as vfio-pci does (index &lt;&lt; 40 of the
/// file offset); mmap maps it eagerly as VM_PFNMAP; VmaToPfn computes from vm_pgoff; the last
/// close sends the Release notification, as a bus driver's close_device does.
/// </summary>
internal sealed class TestVfioDevice(Device device, bool peerToPeer) : VfioDevice(device)
{
    private const int IndexShift = 40;

    public override bool AllowsPeerToPeer => peerToPeer;

    public static ulong RegionOffset(int index) => (ulong)index << IndexShift;

    public override KResult<PfnRun> VmaToPfn(Vma vma, ulong offset, ulong length)
    {
        var shift = vma.Mm.Geometry.PageShift;
        var fileOffset = (vma.PgOff << shift) + offset;
        var index = (int)(fileOffset >> IndexShift);
        var within = fileOffset & ((1UL << IndexShift) - 1);
        if (index >= Device.Mmio.Count || within + length > Device.Mmio[index].Size)
        {
            return Errno.EINVAL;
        }

        return new PfnRun(new Pfn((Device.Mmio[index].Start.Value + within) >> shift), length >> shift);
    }

    protected internal override KResult Mmap(Vma vma)
    {
        var shift = vma.Mm.Geometry.PageShift;
        var fileOffset = vma.PgOff << shift;
        var index = (int)(fileOffset >> IndexShift);
        var within = fileOffset & ((1UL << IndexShift) - 1);
        if (index >= Device.Mmio.Count || within + vma.Length > Device.Mmio[index].Size)
        {
            return Errno.EINVAL;
        }

        return vma.RemapPfnRange(vma.Start, new Pfn((Device.Mmio[index].Start.Value + within) >> shift), vma.Length);
    }

    protected internal override void CloseDevice() => NotifyRelease();
}

/// <summary>
/// A booted machine with test vfio devices registered and one process driving the uAPI, plus
/// the end-of-test invariants: no pins, no locked_vm, no IOPTEs, no notifier registrations, no oopses.
/// </summary>
internal sealed class Type1Sut
{
    public const string NicName = "0000:01:00.0";   // group 1, BAR0 64 KiB
    public const string GpuName = "0000:02:00.0";   // group 2, BAR0 16 MiB, BAR2 32 GiB
    public const string EmulatedName = "0000:03:00.0";   // group 3, registered only by tests of emulated access

    public const uint SetIommu = (';' << 8) | 102;
    public const uint CheckExtension = (';' << 8) | 101;
    public const uint GetInfo = (';' << 8) | 112;
    public const uint MapDma = (';' << 8) | 113;
    public const uint UnmapDma = (';' << 8) | 114;
    public const uint DirtyPages = (';' << 8) | 117;

    private readonly List<IommuDomain> _domains = [];

    private Type1Sut(Machine machine, UserProcess process)
    {
        Machine = machine;
        Process = process;
        BaselineFolios = machine.Memory.LiveFolios;
        Nic = Register(NicName, peerToPeer: false);
        Gpu = Register(GpuName, peerToPeer: true);
    }

    public Machine Machine { get; }

    public UserProcess Process { get; }

    public long BaselineFolios { get; }

    public TestVfioDevice Nic { get; }

    public TestVfioDevice Gpu { get; }

    public int Container { get; private set; } = -1;

    public static Type1Sut Create(MachineSettings? settings = null, ProcessOptions? options = null)
    {
        var spec = MachineSpec.Default;
        if (settings is not null)
        {
            spec = spec with { Settings = settings };
        }

        var machine = Machine.Boot(spec);
        return new Type1Sut(machine, machine.Spawn(options));
    }

    /// <summary>Opens the container, sets the given groups on it and SET_IOMMU(<paramref name="type"/>).</summary>
    public Dictionary<int, int> Setup(ulong type = 3, params int[] groups)
    {
        if (groups.Length == 0)
        {
            groups = [1];
        }

        Container = Process.Open("/dev/vfio/vfio");
        Assert.True(Container >= 0, $"open container: {Container}");
        var groupFds = new Dictionary<int, int>();
        foreach (var g in groups)
        {
            var fd = Process.Open($"/dev/vfio/{g}");
            Assert.True(fd >= 0, $"open group {g}: {fd}");
            Assert.Equal(0, Process.SetContainer(fd, Container));
            groupFds[g] = fd;
            if (groups[0] == g)
            {
                Assert.Equal(0, Process.Ioctl(Container, SetIommu, type));
            }
        }

        foreach (var g in groups)
        {
            Assert.True(Machine.TryGetGroup(new IommuGroupId(g), out var group));
            Assert.NotNull(group.Domain);
            if (!_domains.Contains(group.Domain!))
            {
                _domains.Add(group.Domain!);
            }
        }

        return groupFds;
    }

    public IommuDomain Domain(int group) =>
        Machine.TryGetGroup(new IommuGroupId(group), out var g) ? g.Domain! : throw new InvalidOperationException();

    public int OpenDevice(int groupFd, string name)
    {
        var fd = (int)Process.GetDeviceFd(groupFd, name);
        Assert.True(fd >= 0, $"get device fd {name}: {fd}");
        return fd;
    }

    public ulong MapAnonymous(ulong length, ulong addr = 0)
    {
        var flags = MapFlags.Private | MapFlags.Anonymous | (addr != 0 ? MapFlags.Fixed : MapFlags.None);
        var va = Process.Mmap(addr, length, Prot.Read | Prot.Write, flags);
        Assert.True(va > 0, $"mmap: {va}");
        return (ulong)va;
    }

    public static byte[] DmaMapArg(ulong vaddr, ulong iova, ulong size, uint flags = 3, uint argsz = 32)
    {
        var b = new byte[32];
        BinaryPrimitives.WriteUInt32LittleEndian(b, argsz);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(8), vaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), iova);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), size);
        return b;
    }

    public long Map(ulong vaddr, ulong iova, ulong size, uint flags = 3) =>
        Process.Ioctl(Container, MapDma, DmaMapArg(vaddr, iova, size, flags));

    public (long Result, ulong Size) Unmap(ulong iova, ulong size, uint flags = 0)
    {
        var b = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(b, 24);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(8), iova);
        BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(16), size);
        var r = Process.Ioctl(Container, UnmapDma, b);
        return (r, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(16)));
    }

    /// <summary>The emulated device, once <see cref="RegisterEmulated"/> registered it.</summary>
    public EmulatedTestDevice? Emulated { get; private set; }

    /// <summary>Registers an <see cref="EmulatedTestDevice"/> for <paramref name="name"/> (default: the first function of group 3).</summary>
    public EmulatedTestDevice RegisterEmulated(string name = EmulatedName)
    {
        Assert.True(Machine.TryGetDevice(name, out var device));
        var registered = Machine.Vfio.RegisterDevice(new EmulatedTestDevice(device, Machine.Geometry.PageSize));
        Assert.True(registered.IsOk, $"register {name}: {registered.Error}");
        Emulated = registered.Value;
        return Emulated;
    }

    /// <summary>Pins on the folio behind <paramref name="pfn"/> (IOMMU path and external pins alike).</summary>
    public long PinCount(Pfn pfn) => Machine.Memory.TryGetFolio(pfn, out var folio) ? folio.PinCount : 0;

    /// <summary>The pfn <paramref name="iova"/> translates to in the domain of <paramref name="group"/>.</summary>
    public Pfn PfnAt(int group, ulong iova)
    {
        Assert.True(Domain(group).TryIovaToPhys(new Iova(iova), out var phys));
        return new Pfn(phys.Value >> Machine.Geometry.PageShift);
    }

    /// <summary>
    /// Exits the process (closing every fd and VMA) and checks that nothing is left behind. A test
    /// that drives the kernel into a BUG on purpose names how many oopses it expects.
    /// </summary>
    public void AssertClean(int expectedOopses = 0)
    {
        Process.Exit();
        Machine.SystemWorkqueue.Flush();
        Assert.Equal(expectedOopses, Machine.Oopses.Count);
        Assert.Equal(0, Process.Mm.LockedVm);
        Assert.Equal(BaselineFolios, Machine.Memory.LiveFolios);
        foreach (var d in _domains)
        {
            Assert.Equal(0, d.LiveIoptes);
        }

        foreach (var g in Machine.IommuGroups)
        {
            Assert.Null(g.Domain);
        }

        Assert.Equal(0, Nic.NotifierCount);
        Assert.Equal(0, Gpu.NotifierCount);
        Assert.Equal(1, Nic.RefCount);
        Assert.Equal(1, Gpu.RefCount);
        if (Emulated is { } emulated)
        {
            Assert.Equal(0, emulated.PinnedPages);
            Assert.False(emulated.IsRegisteredWithBackend);
            Assert.Equal(0, emulated.NotifierCount);
            Assert.Equal(1, emulated.RefCount);
        }
    }

    private TestVfioDevice Register(string name, bool peerToPeer)
    {
        Assert.True(Machine.TryGetDevice(name, out var device));
        var registered = Machine.Vfio.RegisterDevice(new TestVfioDevice(device, peerToPeer));
        Assert.True(registered.IsOk, $"register {name}: {registered.Error}");
        return registered.Value;
    }
}
