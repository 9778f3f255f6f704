using Apex.Server.Execution;

namespace Apex.Tests.Execution;

public sealed class UserExecutionContextTests
{
    private static UserExecutionContext Valid() =>
        UserExecutionContext.Create("u-1", "t-1", "r-1", "free", DateTimeOffset.UnixEpoch);

    [Theory]
    [InlineData("", "t", "r")]
    [InlineData("default", "t", "r")]
    [InlineData("u", "test", "r")]
    [InlineData("u", "t", "null")]
    public void PlaceholderOrEmptyIdsAreRejected(string user, string thread, string run) =>
        Assert.ThrowsAny<ArgumentException>(() => UserExecutionContext.Create(user, thread, run, "free", DateTimeOffset.UnixEpoch));

    [Fact]
    public void ChildrenGetANewRequestIdAndOneMoreLevelUpToTen()
    {
        var context = Valid();
        var child = context.CreateChild("agent:triage");
        Assert.Equal(1, child.Depth);
        Assert.Equal(context.RequestId, child.ParentRequestId);
        Assert.NotEqual(context.RequestId, child.RequestId);
        Assert.Equal(context.UserId, child.UserId);

        for (var i = 1; i < UserExecutionContext.MaxDepth; i++) child = child.CreateChild("step");
        Assert.Equal(10, child.Depth);
        Assert.Throws<InvalidOperationException>(() => child.CreateChild("too deep"));
    }
}
