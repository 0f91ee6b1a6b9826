using KernelModel.Iommu;
using KernelModel.Mm;

namespace KernelModel.Tests.Hosting;

public class MachineDmaTests : MachineTestBase
{
    private const string Nic = "0000:01:00.0";
    private const string Gpu = "0000:02:00.0";
    private const ulong K4 = 4096;
    private const ulong GpuBar0 = 0xfc000000;
    private const ulong Iova = 0x10_0000;
    private const IommuProt Rw = IommuProt.Read | IommuProt.Write;

    // The NIC's group attached to a fresh domain, and a process with one populated page.
    private (Machine Machine, UserProcess Process, IommuDomain Domain, ulong Va) CreateSut()
    {
        var (machine, process) = BootAndSpawn();
        Assert.True(machine.TryGetDevice(Nic, out var nic));
        var domain = machine.AllocateDomain();
        Assert.True(nic.IommuGroup!.Attach(domain).IsOk);
        var va = process.Mmap(0, K4, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);
        Assert.True(va > 0);
        return (machine, process, domain, (ulong)va);
    }

    private static PfnRun PinAndMap(UserProcess process, IommuDomain domain, ulong va, IommuProt prot = Rw)
    {
        var runs = new PfnRun[1];
        Assert.Equal(1, Gup.PinUserPages(process.Mm, va, 1, FollFlags.Write | FollFlags.LongTerm, runs, out _).Value);
        Assert.True(domain.Map(new Iova(Iova), new PhysAddr(runs[0].Start.Value * K4), K4, prot).IsOk);
        return runs[0];
    }

    [Fact]
    public void Write_GroupWithoutDomain_RecordsFaultAndReturnsEfault()
    {
        var machine = Boot();

        var result = machine.Dma(Nic).Write(Iova, [1, 2, 3]);

        Assert.Equal(-(long)Errno.EFAULT, result);
        var fault = Assert.Single(machine.IommuFaults);
        Assert.Equal((Nic, Iova, true), (fault.Device, fault.Iova.Value, fault.Write));
        Assert.Contains("no domain", fault.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_UnmappedIova_RecordsIommuFaultAndReturnsEfault()
    {
        var (machine, _, _, _) = CreateSut();

        var result = machine.Dma(Nic).Read(Iova + 0x40, new byte[8]);

        Assert.Equal(-(long)Errno.EFAULT, result);
        var fault = Assert.Single(machine.IommuFaults);
        Assert.Equal((Iova + 0x40, false), (fault.Iova.Value, fault.Write));
        Assert.Contains("not mapped", fault.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadWrite_MappedPinnedPage_ReachesTheProcessMemory()
    {
        var (machine, process, domain, va) = CreateSut();
        process.WriteMemory(va + 0x10, [0xaa, 0xbb]);
        var run = PinAndMap(process, domain, va);

        var readBack = new byte[2];
        var read = machine.Dma(Nic).Read(new Iova(Iova + 0x10), readBack);
        var write = machine.Dma(Nic).Write(new Iova(Iova + 0x20), [0xcc]);
        var seenByCpu = new byte[1];
        process.ReadMemory(va + 0x20, seenByCpu);

        Assert.Equal((2L, 1L), (read, write));
        Assert.Equal([0xaa, 0xbb], readBack);
        Assert.Equal([0xcc], seenByCpu);
        Assert.Empty(machine.Sanitizer.Reports);
        Assert.Empty(machine.IommuFaults);
        Gup.UnpinPages(machine.Memory, run, dirty: true);
    }

    [Fact]
    public void Write_ReadOnlyIommuMapping_FaultsWithoutWriting()
    {
        var (machine, process, domain, va) = CreateSut();
        var run = PinAndMap(process, domain, va, IommuProt.Read);

        var result = machine.Dma(Nic).Write(Iova, [1]);

        Assert.Equal(-(long)Errno.EFAULT, result);
        Assert.Contains("read-only", Assert.Single(machine.IommuFaults).Reason, StringComparison.Ordinal);
        var cpu = new byte[1];
        process.ReadMemory(va, cpu);
        Assert.Equal([0], cpu);
        Gup.UnpinPages(machine.Memory, run, dirty: false);
    }

    [Fact]
    public void Write_AcrossMappedIntoUnmapped_WritesTheMappedPartThenFaults()
    {
        var (machine, process, domain, va) = CreateSut();
        var run = PinAndMap(process, domain, va);

        var result = machine.Dma(Nic).Write(Iova + K4 - 2, [1, 2, 3, 4]);

        Assert.Equal(-(long)Errno.EFAULT, result);
        Assert.Equal(Iova + K4, Assert.Single(machine.IommuFaults).Iova.Value);
        var cpu = new byte[2];
        process.ReadMemory(va + K4 - 2, cpu);
        Assert.Equal([1, 2], cpu);
        Gup.UnpinPages(machine.Memory, run, dirty: true);
    }

    [Fact]
    public void Write_IovaMappedToPeerBar_LandsInPeerStore()
    {
        var (machine, _, domain, _) = CreateSut();
        Assert.True(machine.TryGetDevice(Gpu, out var gpu));
        var bar = gpu.Mmio[0];
        var accesses = bar.Accesses;
        Assert.True(domain.Map(new Iova(Iova), new PhysAddr(GpuBar0), K4, Rw | IommuProt.Mmio).IsOk);

        var result = machine.Dma(Nic).Write(Iova + 0x100, [9, 8, 7]);

        Assert.Equal(3, result);
        var store = new byte[3];
        bar.Read(0x100, store);
        Assert.Equal([9, 8, 7], store);
        Assert.Equal(accesses + 2, bar.Accesses);
        Assert.Empty(machine.Sanitizer.Reports);
    }

    [Fact]
    public void Write_PeerBarNoLongerHeld_SanitizerReports()
    {
        var (machine, _, domain, _) = CreateSut();
        Assert.True(machine.TryGetDevice(Gpu, out var gpu));
        domain.Map(new Iova(Iova), new PhysAddr(GpuBar0), K4, Rw);
        gpu.Mmio[0].DmaHeld = false;

        machine.Dma(Nic).Write(Iova, [1]);

        var report = Assert.Single(machine.Sanitizer.Reports);
        Assert.Equal((Nic, GpuBar0), (report.Device, report.Phys.Value));
        Assert.Contains(Gpu, report.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_AfterUnpinAndMunmap_SanitizerReportsUseAfterFree()
    {
        var (machine, process, domain, va) = CreateSut();
        var run = PinAndMap(process, domain, va);
        Gup.UnpinPages(machine.Memory, run, dirty: true);
        process.Munmap(va, K4);
        Assert.False(machine.Memory.TryGetFolio(run.Start, out _));

        var result = machine.Dma(Nic).Write(Iova + 8, [0xff]);

        Assert.Equal(1, result);
        var report = Assert.Single(machine.Sanitizer.Reports);
        Assert.Equal((Nic, Iova + 8, run.Start.Value * K4 + 8, true), (report.Device, report.Iova.Value, report.Phys.Value, report.Write));
        Assert.Contains("free", report.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_MappedPageNotPinned_SanitizerReports()
    {
        var (machine, process, domain, va) = CreateSut();
        var run = PinAndMap(process, domain, va);
        Gup.UnpinPages(machine.Memory, run, dirty: false);

        machine.Dma(Nic).Read(Iova, new byte[1]);

        Assert.Contains("not pinned", Assert.Single(machine.Sanitizer.Reports).Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_PinnedButUnmappedFromProcess_SanitizerSilent()
    {
        var (machine, process, domain, va) = CreateSut();
        var run = PinAndMap(process, domain, va);
        process.Munmap(va, K4);

        var result = machine.Dma(Nic).Write(Iova, [1]);

        Assert.Equal(1, result);
        Assert.Empty(machine.Sanitizer.Reports);
        Gup.UnpinPages(machine.Memory, run, dirty: true);
        Assert.False(machine.Memory.TryGetFolio(run.Start, out _));
    }

    [Fact]
    public void Dma_UnknownDevice_ReturnsEnodev()
    {
        var machine = Boot();

        Assert.Equal(-(long)Errno.ENODEV, machine.Dma("0000:ff:00.0").Write(0, [1]));
        Assert.Empty(machine.IommuFaults);
    }

    [Fact]
    public void Read_IovaRangeWrapsAddressSpace_ReturnsEinval()
    {
        var (machine, _, _, _) = CreateSut();

        Assert.Equal(-(long)Errno.EINVAL, machine.Dma(Nic).Read(ulong.MaxValue - 1, new byte[4]));
    }

    [Fact]
    public void Attach_GroupAlreadyAttached_ReturnsEbusyAndDetachRestoresBlocking()
    {
        var (machine, _, domain, _) = CreateSut();
        Assert.True(machine.TryGetGroup(new IommuGroupId(1), out var group));

        var second = group.Attach(machine.AllocateDomain());
        var wrongDetach = group.Detach(machine.AllocateDomain());
        var detach = group.Detach(domain);
        var dma = machine.Dma(Nic).Read(Iova, new byte[1]);

        Assert.Equal((Errno.EBUSY, Errno.EINVAL, Errno.None), (second.Error, wrongDetach.Error, detach.Error));
        Assert.Null(group.Domain);
        Assert.Equal(-(long)Errno.EFAULT, dma);
    }

    [Fact]
    public void Sanitizer_Clear_ForgetsReports()
    {
        var (machine, process, domain, va) = CreateSut();
        var run = PinAndMap(process, domain, va);
        Gup.UnpinPages(machine.Memory, run, dirty: false);
        machine.Dma(Nic).Read(Iova, new byte[1]);

        machine.Sanitizer.Clear();

        Assert.Empty(machine.Sanitizer.Reports);
    }
}
