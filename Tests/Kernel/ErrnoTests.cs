using KernelModel.Kernel;

namespace KernelModel.Tests.Kernel;

public class ErrnoTests
{
    public static TheoryData<Errno, int> LinuxValues => new()
    {
        { Errno.EPERM, 1 },
        { Errno.ENOENT, 2 },
        { Errno.EIO, 5 },
        { Errno.ENXIO, 6 },
        { Errno.EBADF, 9 },
        { Errno.EAGAIN, 11 },
        { Errno.ENOMEM, 12 },
        { Errno.EACCES, 13 },
        { Errno.EFAULT, 14 },
        { Errno.EBUSY, 16 },
        { Errno.EEXIST, 17 },
        { Errno.ENODEV, 19 },
        { Errno.EINVAL, 22 },
        { Errno.EMFILE, 24 },
        { Errno.ENOTTY, 25 },
        { Errno.ENOSPC, 28 },
        { Errno.ERANGE, 34 },
        { Errno.EDEADLK, 35 },
        { Errno.ENOSYS, 38 },
        { Errno.EOVERFLOW, 75 },
        { Errno.EOPNOTSUPP, 95 },
    };

    [Theory]
    [MemberData(nameof(LinuxValues))]
    public void Value_LinuxErrno_MatchesAsmGenericNumber(Errno errno, int expected)
    {
        Assert.Equal(expected, (int)errno);
    }

    [Fact]
    public void Value_None_IsZero()
    {
        Assert.Equal(0, (int)Errno.None);
    }
}

public class KResultTests
{
    [Fact]
    public void Ok_Default_IsOkAndSyscallZero()
    {
        var result = KResult.Ok;

        Assert.True(result.IsOk);
        Assert.Equal(0, result.ToSyscall());
    }

    [Theory]
    [InlineData(Errno.EINVAL, -22)]
    [InlineData(Errno.EFAULT, -14)]
    [InlineData(Errno.EDEADLK, -35)]
    public void ToSyscall_FromErrno_ReturnsNegativeErrno(Errno errno, int expected)
    {
        KResult result = errno;

        Assert.False(result.IsOk);
        Assert.Equal(errno, result.Error);
        Assert.Equal(expected, result.ToSyscall());
    }

    [Fact]
    public void GenericSuccess_FromValue_CarriesValue()
    {
        KResult<int> result = 42;

        Assert.True(result.IsOk);
        Assert.Equal(42, result.Value);
        Assert.True(result.TryGetValue(out var value));
        Assert.Equal(42, value);
        Assert.Equal("Ok(42)", result.ToString());
    }

    [Fact]
    public void GenericFailure_FromErrno_HasErrorAndNoValue()
    {
        KResult<string> result = Errno.ENOENT;

        Assert.False(result.IsOk);
        Assert.Equal(Errno.ENOENT, result.Error);
        Assert.False(result.TryGetValue(out _));
        Assert.Throws<InvalidOperationException>(() => result.Value);
        Assert.Equal("ENOENT", result.ToString());
    }

    [Fact]
    public void Fail_WithNone_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => KResult<int>.Fail(Errno.None));
    }
}
