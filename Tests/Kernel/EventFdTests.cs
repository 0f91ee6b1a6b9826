using System.Buffers.Binary;
using KernelModel.Kernel;
using KernelModel.Tests.Hosting;

namespace KernelModel.Tests.Kernel;

public class EventFdTests : MachineTestBase
{
    private const long Eight = sizeof(ulong);

    private (UserProcess Process, int Fd) CreateSut(uint initial = 0, EventFdFlags flags = EventFdFlags.None)
    {
        var (_, process) = BootAndSpawn();
        var fd = process.EventFd(initial, flags);
        Assert.True(fd >= 0, $"eventfd: {fd}");
        return (process, fd);
    }

    private static EventFdContext Context(UserProcess process, int fd)
    {
        var file = process.Files.Get(fd).Value;
        file.Put();
        return (EventFdContext)file.PrivateData!;
    }

    private static long Write(UserProcess process, int fd, ulong value)
    {
        var buffer = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(buffer, value);
        return process.Pwrite(fd, buffer, 0);
    }

    private static (long Result, ulong Value) Read(UserProcess process, int fd)
    {
        var buffer = new byte[8];
        var result = process.Pread(fd, buffer, 0);
        return (result, BinaryPrimitives.ReadUInt64LittleEndian(buffer));
    }

    [Fact]
    public void Read_NonZeroCounter_ReturnsCounterAndResetsIt()
    {
        var (process, fd) = CreateSut(initial: 3);
        Write(process, fd, 4);

        var first = Read(process, fd);
        var second = Read(process, fd);

        Assert.Equal((Eight, 7UL), first);
        Assert.Equal(-(long)Errno.EAGAIN, second.Result);
        Assert.Equal(0UL, Context(process, fd).Count);
    }

    [Fact]
    public void Read_SemaphoreMode_TakesOneAtATime()
    {
        var (process, fd) = CreateSut(initial: 2, EventFdFlags.Semaphore);

        var first = Read(process, fd);
        var second = Read(process, fd);
        var third = Read(process, fd);

        Assert.Equal((Eight, 1UL), first);
        Assert.Equal((Eight, 1UL), second);
        Assert.Equal(-(long)Errno.EAGAIN, third.Result);
    }

    [Fact]
    public void Read_ZeroCounter_ReturnsEagain()
    {
        var (process, fd) = CreateSut();

        Assert.Equal(-(long)Errno.EAGAIN, Read(process, fd).Result);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(4)]
    [InlineData(7)]
    public void Read_ShortBuffer_ReturnsEinvalAndKeepsCounter(int length)
    {
        var (process, fd) = CreateSut(initial: 5);

        var result = process.Pread(fd, new byte[length], 0);

        Assert.Equal(-(long)Errno.EINVAL, result);
        Assert.Equal(5UL, Context(process, fd).Count);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void Write_ShortBuffer_ReturnsEinval(int length)
    {
        var (process, fd) = CreateSut();

        Assert.Equal(-(long)Errno.EINVAL, process.Pwrite(fd, new byte[length], 0));
    }

    [Fact]
    public void Write_AllOnes_ReturnsEinvalAndKeepsCounter()
    {
        var (process, fd) = CreateSut(initial: 1);

        var result = Write(process, fd, ulong.MaxValue);

        Assert.Equal(-(long)Errno.EINVAL, result);
        Assert.Equal(1UL, Context(process, fd).Count);
    }

    [Fact]
    public void Write_UpToMaximum_SucceedsAndOneMoreIsEagain()
    {
        var (process, fd) = CreateSut(initial: 1);

        var toMax = Write(process, fd, ulong.MaxValue - 2);
        var overflow = Write(process, fd, 1);

        Assert.Equal(Eight, toMax);
        Assert.Equal(-(long)Errno.EAGAIN, overflow);
        Assert.Equal(ulong.MaxValue - 1, Context(process, fd).Count);
    }

    [Fact]
    public void Write_Zero_SucceedsAndLeavesCounter()
    {
        var (process, fd) = CreateSut(initial: 2);

        Assert.Equal(Eight, Write(process, fd, 0));
        Assert.Equal(2UL, Context(process, fd).Count);
    }

    [Fact]
    public void Signal_KernelSide_AddsOneAndUserReadSeesIt()
    {
        var (process, fd) = CreateSut();
        var ctx = Context(process, fd);

        ctx.Signal();
        ctx.Signal();
        var read = Read(process, fd);

        Assert.Equal((Eight, 2UL), read);
        Assert.Equal(2, ctx.Signals);
    }

    [Fact]
    public void Signal_AtUserMaximum_SaturatesAtAllOnesAndWriteIsEagain()
    {
        var (process, fd) = CreateSut();
        var ctx = Context(process, fd);
        Write(process, fd, ulong.MaxValue - 1);

        ctx.Signal();
        ctx.Signal();
        var write = Write(process, fd, 1);

        Assert.Equal(ulong.MaxValue, ctx.Count);
        Assert.Equal(-(long)Errno.EAGAIN, write);
        Assert.Equal((Eight, ulong.MaxValue), Read(process, fd));
    }

    [Fact]
    public void EventFd_UnknownFlag_ReturnsEinval()
    {
        var (_, process) = BootAndSpawn();

        Assert.Equal(-(int)Errno.EINVAL, process.EventFd(0, (EventFdFlags)0x4));
    }

    [Fact]
    public void Flags_CreatedWithSemaphore_AreKept()
    {
        var (process, fd) = CreateSut(flags: EventFdFlags.Semaphore | EventFdFlags.NonBlock);

        Assert.Equal(EventFdFlags.Semaphore | EventFdFlags.NonBlock, Context(process, fd).Flags);
    }
}
