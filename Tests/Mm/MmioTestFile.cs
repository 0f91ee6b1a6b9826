using KernelModel.Kernel;
using KernelModel.Mm;

namespace KernelModel.Tests.Mm;

/// <summary>
/// A small device file for tests: its mmap maps the pages of an MMIO region as VM_PFNMAP, one pfn
/// per fault (like a driver's fault handler calling vmf_insert_pfn), and it counts faults and
/// releases. Every open shares one inode, so one address space covers every mmap of it.
/// </summary>
internal sealed class MmioTestFile : FileOperations
{
    public const string Path = "/dev/test-mmio";

    private readonly MmioRegion _region;
    private readonly int _pageShift;
    private readonly TestVmOperations _vmOps;

    public MmioTestFile(Machine machine, MmioRegion region)
    {
        _region = region;
        _pageShift = machine.Geometry.PageShift;
        _vmOps = new TestVmOperations(this);
        machine.RegisterDevNode(Path, () => Open());
    }

    public Inode Inode { get; } = new("test-mmio");

    public int Faults { get; private set; }

    public int Releases { get; private set; }

    public int VmaCloses { get; private set; }

    public ulong RegionPages => _region.Size >> _pageShift;

    public File Open() => new(this, Inode);

    public override KResult Mmap(File file, Vma vma)
    {
        if (vma.PgOff > RegionPages || (vma.Length >> _pageShift) > RegionPages - vma.PgOff)
        {
            return Errno.EINVAL;
        }

        vma.Flags |= VmFlags.Io | VmFlags.PfnMap | VmFlags.DontExpand | VmFlags.DontDump;
        vma.Operations = _vmOps;
        return KResult.Ok;
    }

    public override void Release(File file) => Releases++;

    private sealed class TestVmOperations(MmioTestFile owner) : VmOperations
    {
        public override VmFaultResult Fault(VmFault vmf)
        {
            owner.Faults++;
            var pfn = new Pfn((owner._region.Start.Value >> owner._pageShift) + vmf.PgOff);
            return vmf.Vma.InsertPfn(vmf.Address, pfn).IsOk ? VmFaultResult.NoPage : VmFaultResult.SigBus;
        }

        public override void Close(Vma vma) => owner.VmaCloses++;
    }
}
