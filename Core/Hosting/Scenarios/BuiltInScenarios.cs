using System.Buffers.Binary;
using System.Text;
using KernelModel.Uapi;

namespace KernelModel.Scenarios;

/// <summary>
/// The scenarios `kmodel run` knows: the user sequences the project grew from, each on a fresh
/// machine, each with the outcome it must show.
/// </summary>
public static class BuiltInScenarios
{
    private const string DeviceA = "0000:02:00.0";   // the GPU: its BAR is the peer-to-peer target
    private const string DeviceB = "0000:01:00.0";   // the NIC: the DMA initiator
    private const ulong P2pIova = 0x1_0000_0000;

    /// <summary>Every built-in scenario.</summary>
    public static IReadOnlyList<Scenario> All { get; } =
    [
        new("seed-rfc", "RFC 'Device memory DMA mapping improvements' end to end under strict MMIO maps: releasing device A drops B's peer-to-peer mapping of A's BAR, so B's next DMA faults", t => PeerToPeer(t, strict: true)),
        new("seed-rfc-legacy", "The same sequence under legacy (non-strict) MMIO maps: the mapping outlives A's release and the DMA sanitizer reports B's DMA as a use-after-free", t => PeerToPeer(t, strict: false)),
        new("devmem-refused", "type1 refuses to map /dev/mem (a non-vfio VM_PFNMAP) under strict MMIO maps", DevMemRefused),
        new("msix-ppc64", "ppc64, 64 KiB pages, default policy: the MSI-X BAR is mappable whole, so registers sharing the table's page are reached by mmap", t => MsixPage(t, mappable: true)),
        new("msix-ppc64-sparse", "ppc64, 64 KiB pages, pre-4.16 policy: the table's page is cut out by a sparse mmap, so registers beside it only go through pread/pwrite", t => MsixPage(t, mappable: false)),
    ];

    /// <summary>Finds a scenario by name.</summary>
    public static bool TryGet(string name, out Scenario scenario)
    {
        scenario = All.FirstOrDefault(s => s.Name == name)!;
        return scenario is not null;
    }

    private static Machine BootWith(MachineSpec spec, ScenarioTrace t, params string[] vfioDevices)
    {
        var machine = Machine.Boot(spec);
        t.Note($"machine {spec.Name}: strict MMIO maps {(spec.Settings.StrictMmioMaps ? "on" : "off")}, MSI-X mappable {(spec.Settings.MsixMappable ? "yes" : "no")}");
        foreach (var name in vfioDevices)
        {
            var bound = machine.Sysfs.Bind(name, "vfio-pci");
            t.Expect(bound.IsOk, $"bind {name} to vfio-pci ({(bound.IsOk ? "ok" : bound.Error.ToString())})");
        }

        return machine;
    }

    // A container holding the groups of the named devices, with type1v2 set and the device fds
    // open; null (with the failed expectation in the trace) when any step fails.
    private static (int Container, int[] Groups, int[] Devices)? OpenContainer(VfioUser u, Machine machine, params string[] devices)
    {
        var t = u.Trace;
        var container = u.Open("/dev/vfio/vfio");
        var groups = new List<int>();
        var fds = new List<int>();
        foreach (var name in devices)
        {
            machine.TryGetDevice(name, out var device);
            var group = u.Open($"/dev/vfio/{device.IommuGroup!.Id}");
            if (!t.Expect(group >= 0, $"group {device.IommuGroup.Id} of {name} opens")
                || !t.ExpectResult(u.SetContainer(group, container), 0, $"group of {name} joins the container"))
            {
                return null;
            }

            groups.Add(group);
        }

        if (!t.ExpectResult(u.SetIommu(container, VfioUapi.VFIO_TYPE1v2_IOMMU), 0, "the type1v2 IOMMU backend is set"))
        {
            return null;
        }

        for (var i = 0; i < devices.Length; i++)
        {
            var fd = u.GetDeviceFd(groups[i], devices[i]);
            if (!t.Expect(fd >= 0, $"device fd for {devices[i]}"))
            {
                return null;
            }

            fds.Add(fd);
        }

        return (container, [.. groups], [.. fds]);
    }

    private static void PeerToPeer(ScenarioTrace t, bool strict)
    {
        var spec = MachineSpec.Default with { Settings = MachineSpec.Default.Settings with { StrictMmioMaps = strict } };
        var machine = BootWith(spec, t, DeviceA, DeviceB);
        var u = new VfioUser(machine.Spawn(), t);
        if (OpenContainer(u, machine, DeviceA, DeviceB) is not var (container, groups, fds))
        {
            return;
        }

        var (fdA, fdB) = (fds[0], fds[1]);

        var bar = u.GetRegionInfo(fdA, VfioUapi.VFIO_PCI_BAR0_REGION_INDEX);
        if (!t.Expect(bar is { Mmappable: true, Size: > 0 }, $"{DeviceA} BAR0 is mmappable"))
        {
            return;
        }

        var va = u.MmapShared(fdA, bar!.Offset, bar.Size);
        if (!t.Expect(va > 0, "A's BAR0 is mmapped"))
        {
            return;
        }

        t.ExpectResult(u.MapDma(container, (ulong)va, P2pIova, bar.Size), 0, "MAP_DMA of A's BAR mapping for the container (peer-to-peer)");

        var message = Encoding.ASCII.GetBytes("hello from B");
        var dma = machine.Dma(DeviceB);
        t.ExpectResult(dma.Write(P2pIova + 0x100, message), message.Length, $"{DeviceB} DMA-writes into A's BAR through the IOMMU");
        var seen = new byte[message.Length];
        u.Process.ReadMemory((ulong)va + 0x100, seen);
        t.Expect(seen.AsSpan().SequenceEqual(message), "the bytes arrived in A's BAR (read back through A's mmap)");

        var deviceA = machine.Vfio.Devices.First(d => d.Name == DeviceA);
        var listeners = deviceA.NotifierCount;
        t.Kernel($"{DeviceA}: {deviceA.RefCount - 1} reference(s) beyond its registration (the open fd's, plus type1's when it tracks the mapping), {listeners} registration(s) on its notifier chain");
        u.Munmap((ulong)va, bar.Size);
        u.Close(fdA);
        t.Kernel($"A's last fd closed: Release went down {DeviceA}'s notifier chain; registrations {listeners} -> {deviceA.NotifierCount}, references beyond registration -> {deviceA.RefCount - 1}");
        if (strict)
        {
            t.Expect(listeners > 0 && deviceA.NotifierCount == 0, "type1 listened for A's release and unregistered from the workqueue, not from inside the chain");
        }

        var faultsBefore = machine.IommuFaults.Count;
        var again = dma.Write(P2pIova + 0x100, message);
        t.Syscall($"{DeviceB} DMA write to iova 0x{P2pIova + 0x100:x} (device-initiated)", again);
        if (strict)
        {
            t.ExpectResult(again, -(long)Errno.EFAULT, "B's DMA is an IOMMU fault: the mapping was dropped on release");
            t.Expect(machine.IommuFaults.Count == faultsBefore + 1, $"one IOMMU fault recorded: {machine.IommuFaults.LastOrDefault()}");
            t.Expect(machine.Sanitizer.Reports.Count == 0, "the DMA sanitizer reports nothing");
        }
        else
        {
            t.ExpectResult(again, message.Length, "B's DMA still goes through: legacy mode kept the mapping");
            t.Expect(machine.Sanitizer.Reports.Count > 0, $"the DMA sanitizer reports a use-after-free: {machine.Sanitizer.Reports.FirstOrDefault()}");
        }

        u.Close(fdB);
        foreach (var g in groups)
        {
            u.Close(g);
        }

        u.Close(container);
        t.Expect(machine.Oopses.Count == 0, "no kernel oops");
    }

    private static void DevMemRefused(ScenarioTrace t)
    {
        var machine = BootWith(MachineSpec.Default, t, DeviceB);
        var u = new VfioUser(machine.Spawn(), t);
        if (OpenContainer(u, machine, DeviceB) is not var (container, groups, fds))
        {
            return;
        }

        machine.TryGetDevice(DeviceA, out var a);
        var bar = a.Mmio[0];
        var mem = u.Open("/dev/mem");
        var va = u.MmapShared(mem, bar.Start.Value, bar.Size);
        t.Expect(va > 0, $"/dev/mem maps {bar.Name} (a VM_PFNMAP that no vfio device owns)");
        t.ExpectResult(u.MapDma(container, (ulong)va, P2pIova, bar.Size), -(long)Errno.EFAULT, "MAP_DMA of the /dev/mem mapping is refused");
        u.Munmap((ulong)va, bar.Size);
        u.Close(mem);
        foreach (var fd in fds.Concat(groups).Append(container))
        {
            u.Close(fd);
        }

        t.Expect(machine.Oopses.Count == 0, "no kernel oops");
    }

    private static void MsixPage(ScenarioTrace t, bool mappable)
    {
        var spec = MachineSpec.Ppc64 with { Settings = MachineSpec.Ppc64.Settings with { MsixMappable = mappable } };
        var nic = spec.Devices[0].Name;
        var machine = BootWith(spec, t, nic);
        var u = new VfioUser(machine.Spawn(), t);
        if (OpenContainer(u, machine, nic) is not var (container, groups, fds))
        {
            return;
        }

        var fd = fds[0];
        var pageSize = machine.Geometry.PageSize;

        // Where the MSI-X table is: its capability in config space, as QEMU finds it.
        if (u.GetRegionInfo(fd, VfioUapi.VFIO_PCI_CONFIG_REGION_INDEX) is not { } config)
        {
            t.Expect(false, "config region info");
            return;
        }

        var space = u.Pread(fd, 256, config.Offset, out _);
        var (bir, tableOffset, vectors) = FindMsix(space);
        t.Note($"MSI-X: {vectors} vectors, table in BAR{bir} at 0x{tableOffset:x}; page size 0x{pageSize:x}");
        if (vectors == 0 || u.GetRegionInfo(fd, bir) is not { } bar)
        {
            t.Expect(false, "the device has an MSI-X capability and its BAR has region info");
            return;
        }

        var register = tableOffset + (ulong)(vectors * 16);   // the first register after the table, in the table's page
        t.Expect(register / pageSize == tableOffset / pageSize, $"register 0x{register:x} shares the table's {pageSize >> 10} KiB page");

        var hasMappableCap = bar.Caps.Any(c => c.Id == VfioUapi.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
        var sparse = bar.SparseAreas;
        long slowTrips = 0;
        var value = new byte[] { 0x5a, 0xa5, 0x0f, 0xf0 };
        if (mappable)
        {
            t.Expect(hasMappableCap && sparse is null, "BAR carries VFIO_REGION_INFO_CAP_MSIX_MAPPABLE and no sparse mmap");
            var va = u.MmapShared(fd, bar.Offset, bar.Size);
            t.Expect(va > 0, "the whole BAR, table page included, is mmapped");
            t.ExpectResult(u.Process.WriteMemory((ulong)va + register, value), value.Length, "the register beside the table is written by a CPU store");
            var back = new byte[4];
            u.Process.ReadMemory((ulong)va + register, back);
            t.Expect(back.AsSpan().SequenceEqual(value), "and read back by a CPU load: no trip through the kernel");
            u.Munmap((ulong)va, bar.Size);
        }
        else
        {
            t.Expect(!hasMappableCap && sparse is not null, "BAR carries a sparse mmap capability instead");
            var tablePage = tableOffset & ~(pageSize - 1);
            t.Expect(sparse!.All(a => a.Offset + a.Size <= tablePage || a.Offset >= tablePage + pageSize), $"the sparse areas leave out the page at 0x{tablePage:x}");
            t.ExpectResult(u.MmapShared(fd, bar.Offset + tablePage, pageSize), -(long)Errno.EINVAL, "mmap of the table's page is refused");
            var readBack = true;
            for (var i = 0; i < 4; i++)
            {
                var w = u.Pwrite(fd, value, bar.Offset + register);
                var back = u.Pread(fd, 4, bar.Offset + register, out var r);
                slowTrips += (w == value.Length ? 1 : 0) + (r == 4 ? 1 : 0);
                readBack &= back.AsSpan().SequenceEqual(value);
            }

            t.Expect(readBack, "the register reads back what was written through the fd");
            t.Expect(slowTrips == 8, $"4 writes and 4 reads of the register took {slowTrips} trips through the kernel (pwrite/pread)");
        }

        foreach (var f in fds.Concat(groups).Append(container))
        {
            u.Close(f);
        }

        t.Expect(machine.Oopses.Count == 0, "no kernel oops");
    }

    // Walks the capability list of a type 0 config header for MSI-X (id 0x11).
    private static (uint Bir, ulong TableOffset, int Vectors) FindMsix(byte[] config)
    {
        int ptr = config[0x34] & 0xfc;
        for (var guard = 0; ptr != 0 && guard < 48; guard++)
        {
            if (config[ptr] == 0x11)
            {
                var control = BinaryPrimitives.ReadUInt16LittleEndian(config.AsSpan(ptr + 2));
                var table = BinaryPrimitives.ReadUInt32LittleEndian(config.AsSpan(ptr + 4));
                return (table & 7, table & ~7u, (control & 0x7ff) + 1);
            }

            ptr = config[ptr + 1] & 0xfc;
        }

        return (0, 0, 0);
    }
}
