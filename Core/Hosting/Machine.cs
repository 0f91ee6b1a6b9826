using KernelModel.Iommu;
using KernelModel.Kernel;
using KernelModel.Mm;
using KernelModel.Vfio;

namespace KernelModel;

/// <summary>
/// A booted machine: physical memory, the IOMMU and its groups, the devices, the device nodes
/// user processes can open, and the kernel's shared services (system workqueue, DMA sanitizer).
/// </summary>
public sealed class Machine
{
    private readonly Dictionary<string, Func<KResult<File>>> _devNodes = new(StringComparer.Ordinal);
    private readonly List<Device> _devices = [];
    private readonly SortedDictionary<int, IommuGroup> _groups = [];
    private readonly List<IommuFault> _faults = [];
    private readonly List<string> _oopses = [];
    private readonly Lock _lock = new();
    private int _nextPid = 100;

    private Machine(MachineSpec spec, PageGeometry geometry, PluginSet plugins)
    {
        Spec = spec;
        Plugins = plugins;
        Sysfs = new Sysfs(this);
        Geometry = geometry;
        Memory = new PhysicalMemory(geometry, spec.Ram.Select(r => new RamRange(new PhysAddr(r.Start), r.Size)));
        IoPageTableFormat = geometry.PageShift == 16 ? IoPageTableFormat.Ppc64 : IoPageTableFormat.X86_64;
        IommuPageSizeBitmap = spec.Iommu.PageSizes.Aggregate(0UL, (acc, size) => acc | size);
    }

    /// <summary>The plugins composed into this machine.</summary>
    public PluginSet Plugins { get; }

    /// <summary>The vfio core.</summary>
    public VfioCore Vfio { get; private set; } = null!;

    /// <summary>/sys: driver binding and IOMMU groups.</summary>
    public Sysfs Sysfs { get; }

    /// <summary>The spec it was booted from.</summary>
    public MachineSpec Spec { get; }

    /// <summary>Machine policies.</summary>
    public MachineSettings Settings => Spec.Settings;

    /// <summary>The paging geometry.</summary>
    public PageGeometry Geometry { get; }

    /// <summary>Physical memory.</summary>
    public PhysicalMemory Memory { get; }

    /// <summary>The I/O page-table format of the machine's IOMMU.</summary>
    public IoPageTableFormat IoPageTableFormat { get; }

    /// <summary>The IOMMU's supported page sizes.</summary>
    public ulong IommuPageSizeBitmap { get; }

    /// <summary>The devices.</summary>
    public IReadOnlyList<Device> Devices => _devices;

    /// <summary>The IOMMU groups, by number.</summary>
    public IReadOnlyCollection<IommuGroup> IommuGroups => _groups.Values;

    /// <summary>The system workqueue; flushed at every return to user space.</summary>
    public Workqueue SystemWorkqueue { get; } = new("events");

    /// <summary>The DMA sanitizer.</summary>
    public DmaSanitizer Sanitizer { get; } = new();

    /// <summary>IOMMU faults recorded so far.</summary>
    public IReadOnlyList<IommuFault> IommuFaults
    {
        get
        {
            lock (_lock)
            {
                return [.. _faults];
            }
        }
    }

    /// <summary>
    /// Kernel bugs: an exception that reached the syscall boundary. The process sees -EIO; a test
    /// that ends with this list non-empty has found a bug in the model.
    /// </summary>
    public IReadOnlyList<string> Oopses
    {
        get
        {
            lock (_lock)
            {
                return [.. _oopses];
            }
        }
    }

    /// <summary>Boots a machine. Throws <see cref="System.IO.InvalidDataException"/> for a spec that cannot describe a machine.</summary>
    public static Machine Boot(MachineSpec spec) => Boot(spec, PluginSet.Default);

    /// <summary>Boots a machine with the given plugins (the in-tree ones are <see cref="PluginSet.Default"/>).</summary>
    public static Machine Boot(MachineSpec spec, PluginSet plugins)
    {
        if (!PageGeometry.TryGet(spec.Arch, out var geometry))
        {
            throw new System.IO.InvalidDataException($"{spec.Name}: unknown arch '{spec.Arch}'");
        }

        foreach (var r in spec.Ram)
        {
            if (!geometry.IsPageAligned(r.Start) || !geometry.IsPageAligned(r.Size) || r.Size == 0 || r.Start > ulong.MaxValue - r.Size)
            {
                throw new System.IO.InvalidDataException($"{spec.Name}: RAM range 0x{r.Start:x}+0x{r.Size:x} is not page aligned");
            }
        }

        // The buddy allocator would hand out the pages of an overlap twice.
        var sorted = spec.Ram.OrderBy(r => r.Start).ToList();
        for (var i = 1; i < sorted.Count; i++)
        {
            if (sorted[i].Start < sorted[i - 1].Start + sorted[i - 1].Size)
            {
                throw new System.IO.InvalidDataException(
                    $"{spec.Name}: RAM range 0x{sorted[i].Start:x}+0x{sorted[i].Size:x} overlaps 0x{sorted[i - 1].Start:x}+0x{sorted[i - 1].Size:x}");
            }
        }

        var machine = new Machine(spec, geometry, plugins);
        if ((machine.IommuPageSizeBitmap & ~machine.IoPageTableFormat.PageSizeBitmap) != 0 || machine.IommuPageSizeBitmap == 0)
        {
            throw new System.IO.InvalidDataException($"{spec.Name}: IOMMU page sizes 0x{machine.IommuPageSizeBitmap:x} do not fit the {spec.Arch} I/O page table");
        }

        machine.BuildTopology();
        machine.RegisterDevNode(DevMem.Path, () => new File(new DevMem(machine.Memory), new Inode("mem")));
        machine.Vfio = new VfioCore(machine, [.. plugins.IommuBackends.Select(b => (b.Name, b.Instance))]);
        machine.SetUpBuses();
        return machine;
    }

    private void SetUpBuses()
    {
        foreach (var device in _devices)
        {
            if (Plugins.BusTypes.FirstOrDefault(b => b.Name == device.Bus) is { } bus)
            {
                var setup = bus.Instance.Setup(this, device);
                if (!setup.IsOk)
                {
                    throw new System.IO.InvalidDataException($"{Spec.Name}: bus {device.Bus} cannot set up {device.Name}: {setup.Error}");
                }
            }

            if (Spec.Devices.First(d => d.Name == device.Name).Driver is { } driver)
            {
                var bound = Sysfs.Bind(device.Name, driver);
                if (!bound.IsOk)
                {
                    throw new System.IO.InvalidDataException($"{Spec.Name}: cannot bind {device.Name} to {driver}: {bound.Error}");
                }
            }
        }
    }

    private void BuildTopology()
    {
        var common = Spec.Iommu.ReservedRegions.Select(ToRegion).ToList();
        foreach (var g in Spec.IommuGroups)
        {
            _groups[g.Id] = new IommuGroup(new IommuGroupId(g.Id), [.. common, .. g.ReservedRegions.Select(ToRegion)]);
        }

        foreach (var d in Spec.Devices)
        {
            if (_devices.Any(x => x.Name == d.Name))
            {
                throw new System.IO.InvalidDataException($"{Spec.Name}: device {d.Name} appears twice");
            }

            IommuGroup? group = null;
            if (d.IommuGroup is int id)
            {
                if (!_groups.TryGetValue(id, out group))
                {
                    group = new IommuGroup(new IommuGroupId(id), common);
                    _groups[id] = group;
                }
            }

            var device = new Device(d.Name, d.Bus, group, d.Properties);
            foreach (var m in d.Mmio)
            {
                var region = new MmioRegion($"{d.Name} {m.Name}", new PhysAddr(m.Start), m.Size, d.Name);
                var added = Memory.AddMmio(region);
                if (!added.IsOk)
                {
                    throw new System.IO.InvalidDataException($"{Spec.Name}: {region} of {d.Name}: {added.Error} (misaligned or overlapping)");
                }

                device.AddMmio(region);
            }

            group?.AddDevice(device);
            _devices.Add(device);
        }

        static ReservedRegion ToRegion(ReservedSpec r) => new(new Iova(r.Start), new Iova(r.End), r.Type);
    }

    /// <summary>The device called <paramref name="name"/>.</summary>
    public bool TryGetDevice(string name, out Device device)
    {
        device = _devices.FirstOrDefault(d => d.Name == name)!;
        return device is not null;
    }

    /// <summary>The IOMMU group numbered <paramref name="id"/>.</summary>
    public bool TryGetGroup(IommuGroupId id, out IommuGroup group) => _groups.TryGetValue(id.Value, out group!);

    /// <summary>A new IOMMU domain of this machine's IOMMU (iommu_paging_domain_alloc).</summary>
    public IommuDomain AllocateDomain() =>
        new(IoPageTableFormat, IommuPageSizeBitmap, new Iova(0), new Iova((1UL << Spec.Iommu.AddressWidth) - 1));

    /// <summary>DMA issued by the named device. An unknown name gives a handle whose every call is -ENODEV.</summary>
    public DeviceDma Dma(string deviceName) =>
        new(this, deviceName, TryGetDevice(deviceName, out var device) ? device : null);

    /// <summary>Starts a user process.</summary>
    public UserProcess Spawn(ProcessOptions? options = null)
    {
        int pid;
        lock (_lock)
        {
            pid = _nextPid++;
        }

        return new UserProcess(this, pid, options ?? new ProcessOptions());
    }

    /// <summary>
    /// Makes <paramref name="path"/> openable: each open calls <paramref name="open"/> for a new file
    /// holding one reference. EEXIST if the path is taken.
    /// </summary>
    public KResult RegisterDevNode(string path, Func<KResult<File>> open)
    {
        lock (_lock)
        {
            return _devNodes.TryAdd(path, open) ? KResult.Ok : Errno.EEXIST;
        }
    }

    /// <summary>Removes a device node; ENOENT if absent.</summary>
    public KResult UnregisterDevNode(string path)
    {
        lock (_lock)
        {
            return _devNodes.Remove(path) ? KResult.Ok : Errno.ENOENT;
        }
    }

    internal KResult<File> OpenDevNode(string path)
    {
        Func<KResult<File>>? open;
        lock (_lock)
        {
            _devNodes.TryGetValue(path, out open);
        }

        return open is null ? Errno.ENOENT : open();
    }

    /// <summary>The paths of every device node, sorted.</summary>
    public IReadOnlyList<string> DevNodes
    {
        get
        {
            lock (_lock)
            {
                return [.. _devNodes.Keys.Order(StringComparer.Ordinal)];
            }
        }
    }

    internal void RecordIommuFault(IommuFault fault)
    {
        lock (_lock)
        {
            _faults.Add(fault);
        }
    }

    internal void RecordOops(string what)
    {
        lock (_lock)
        {
            _oopses.Add(what);
        }
    }
}
