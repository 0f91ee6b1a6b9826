using KernelModel.Kernel;

namespace KernelModel.Tests.Hosting;

public class UserProcessTests : MachineTestBase
{
    private UserProcess CreateSut(ProcessOptions? options = null) => BootAndSpawn(options).Process;

    public static TheoryData<string, Func<UserProcess, long>, Errno> BadCalls => new()
    {
        { "close -1", p => p.Close(-1), Errno.EBADF },
        { "close unopened", p => p.Close(99), Errno.EBADF },
        { "ioctl buffer on bad fd", p => p.Ioctl(99, 0x3b64, new byte[16]), Errno.EBADF },
        { "ioctl value on bad fd", p => p.Ioctl(-3, 0x3b65, 1UL), Errno.EBADF },
        { "pread bad fd", p => p.Pread(5, new byte[8], 0), Errno.EBADF },
        { "pwrite bad fd", p => p.Pwrite(5, new byte[8], 0), Errno.EBADF },
        { "mmap bad fd", p => p.Mmap(0, 4096, Prot.Read, MapFlags.Shared, 7), Errno.EBADF },
        { "open missing", p => p.Open("/dev/vfio/42"), Errno.ENOENT },
        { "open empty path", p => p.Open(""), Errno.ENOENT },
        { "ioctl on /dev/mem", p => p.Ioctl(p.Open("/dev/mem"), 0x3b64, 0UL), Errno.ENOTTY },
        { "pread negative offset", p => p.Pread(p.EventFd(1), new byte[8], -1), Errno.EINVAL },
        { "munmap misaligned", p => p.Munmap(1, 4096), Errno.EINVAL },
        { "mmap huge length", p => p.Mmap(0, ulong.MaxValue, Prot.Read, MapFlags.Private | MapFlags.Anonymous), Errno.ENOMEM },
        { "mprotect hole", p => p.Mprotect(0x10000, 4096, Prot.Read), Errno.ENOMEM },
        { "madvise bad advice", p => p.Madvise(0x10000, 4096, (Madvise)1234), Errno.EINVAL },
        { "mlock wrap", p => p.Mlock(ulong.MaxValue - 10, 100), Errno.EINVAL },
        { "mlock past TASK_SIZE", p => p.Mlock(1UL << 47, 4096), Errno.ENOMEM },
        { "read null", p => p.ReadMemory(0, new byte[1]), Errno.EFAULT },
        { "write wrapping the address space", p => p.WriteMemory(ulong.MaxValue - 2, new byte[8]), Errno.EFAULT },
    };

    [Theory]
    [MemberData(nameof(BadCalls))]
    public void Syscall_BadArgument_ReturnsNegativeErrnoWithoutThrowing(string what, Func<UserProcess, long> call, Errno expected)
    {
        var process = CreateSut();

        var result = call(process);

        Assert.True(-(long)expected == result, $"{what}: expected -{expected}, got {result}");
    }

    [Fact]
    public void Open_DevMemTwice_ReturnsLowestFreeFds()
    {
        var process = CreateSut();

        var a = process.Open("/dev/mem");
        var b = process.Open("/dev/mem");
        process.Close(a);
        var c = process.Open("/dev/mem");

        Assert.Equal((0, 1, 0), (a, b, c));
    }

    [Fact]
    public void Open_BeyondFileLimit_ReturnsEmfile()
    {
        var process = CreateSut(new ProcessOptions { FileLimit = 2 });
        process.Open("/dev/mem");
        process.EventFd(0);

        Assert.Equal(-(int)Errno.EMFILE, process.Open("/dev/mem"));
        Assert.Equal(-(int)Errno.EMFILE, process.EventFd(0));
        Assert.Equal(2, process.Files.Count);
    }

    [Fact]
    public void Open_DriverOpenFails_ReturnsItsErrnoAndInstallsNoFd()
    {
        var (machine, process) = BootAndSpawn();
        var ops = new FailingOpen();
        machine.RegisterDevNode("/dev/busy", () => new File(ops, new Inode("busy")));

        var result = process.Open("/dev/busy");

        Assert.Equal(-(int)Errno.EBUSY, result);
        Assert.Equal(0, process.Files.Count);
    }

    [Fact]
    public void Open_DriverOpenFails_DropsTheFileWithoutCallingRelease()
    {
        var (machine, process) = BootAndSpawn();
        var ops = new FailingOpen();
        File? created = null;
        machine.RegisterDevNode("/dev/busy", () => created = new File(ops, new Inode("busy")));

        process.Open("/dev/busy");

        Assert.NotNull(created);
        Assert.True(created.IsReleased);
        Assert.Equal(0, ops.Releases);
    }

    [Fact]
    public void Syscall_ModelThrows_ReturnsEioAndRecordsOops()
    {
        // Booted directly: this test expects an oops, which the base class would reject.
        var machine = Machine.Boot(MachineSpec.Default);
        var process = machine.Spawn();
        machine.RegisterDevNode("/dev/buggy", () => new File(new ThrowingIoctl(), new Inode("buggy")));
        var fd = process.Open("/dev/buggy");

        var result = process.Ioctl(fd, 1, 0UL);

        Assert.Equal(-(long)Errno.EIO, result);
        Assert.Contains("Ioctl", Assert.Single(machine.Oopses), StringComparison.Ordinal);
    }

    [Fact]
    public void Syscall_DeferredWork_RunsAtReturnToUser()
    {
        var (machine, process) = BootAndSpawn();
        var ran = false;
        machine.SystemWorkqueue.Schedule(() => ran = true);

        process.Close(42);

        Assert.True(ran);
        Assert.Equal(0, machine.SystemWorkqueue.PendingCount);
    }

    [Fact]
    public void Current_InsideSyscall_IsTheCallingProcess()
    {
        var (machine, process) = BootAndSpawn();
        UserProcess? seen = null;
        machine.RegisterDevNode("/dev/who", () => new File(new CurrentProbe(p => seen = p), new Inode("who")));
        var fd = process.Open("/dev/who");

        process.Ioctl(fd, 1, 0UL);

        Assert.Same(process, seen);
        Assert.Null(UserProcess.Current);
    }

    [Fact]
    public void Exit_Twice_ClosesFilesAndUnmapsOnce()
    {
        var process = CreateSut();
        process.Open("/dev/mem");
        process.Mmap(0, 4096, Prot.Read | Prot.Write, MapFlags.Private | MapFlags.Anonymous | MapFlags.Populate);

        process.Exit();
        process.Exit();

        Assert.Equal(0, process.Files.Count);
        Assert.Empty(process.Mm.Vmas);
        Assert.Equal(0, process.Mm.RssPages);
    }

    private sealed class FailingOpen : FileOperations
    {
        public int Releases { get; private set; }

        public override KResult Open(File file) => Errno.EBUSY;

        public override void Release(File file) => Releases++;
    }

    private sealed class ThrowingIoctl : FileOperations
    {
        public override long Ioctl(File file, uint request, IoctlArg arg) => throw new InvalidOperationException("model bug");
    }

    private sealed class CurrentProbe(Action<UserProcess?> seen) : FileOperations
    {
        public override long Ioctl(File file, uint request, IoctlArg arg)
        {
            seen(UserProcess.Current);
            return 0;
        }
    }
}
