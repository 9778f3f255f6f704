using Apex.Server.Storage;

namespace Apex.Tests.Storage;

/// <summary>Accounts, sessions and tickets: the same tests on SQLite and PostgreSQL.</summary>
public abstract class AccountStoreTests<TDatabase> : StoreTests<TDatabase> where TDatabase : ITestDatabase, new()
{
    [Fact]
    public async Task SchemaIsCurrentAndMigratingAgainChangesNothing()
    {
        Assert.True(await Migrations.IsCurrentAsync(Database, default));
        Assert.Equal(0, await Migrations.ApplyAsync(Database, TimeProvider.System, default));
    }

    [Fact]
    public async Task EmailsAreUniqueAndFailedLoginsLockTheAccount()
    {
        var id = await UserAsync("Same@Example.com");
        Assert.False(await Accounts.CreateUserAsync(new UserRecord(_ids.NewId(), "same@example.com", "SAME@EXAMPLE.COM", "h", "n", "free", _now, 0, null), default));
        for (var i = 0; i < 3; i++) await Accounts.RecordLoginFailureAsync(id, 3, _now.AddMinutes(5), default);
        var locked = await Accounts.FindUserByEmailAsync("SAME@EXAMPLE.COM", default);
        Assert.Equal(_now.AddMinutes(5).ToUnixTimeMilliseconds(), locked!.LockoutUntil!.Value.ToUnixTimeMilliseconds());
        await Accounts.ResetLoginFailuresAsync(id, default);
        Assert.Null((await Accounts.GetUserAsync(id, default))!.LockoutUntil);
    }

    [Fact]
    public async Task RefreshTokensRotateOnceAndSessionsRevoke()
    {
        var user = await UserAsync();
        var session = new SessionRecord(_ids.NewId(), user, "old", _now, _now.AddDays(1), null);
        await Accounts.CreateSessionAsync(session, default);
        Assert.NotNull(await Accounts.RotateRefreshTokenAsync("old", "new", _now.AddDays(2), _now, default));
        Assert.Null(await Accounts.GetSessionAsync(await UserAsync(), session.Id, default));
        // Presenting the rotated-away token again is reuse: it fails and the whole session is revoked.
        Assert.Null(await Accounts.RotateRefreshTokenAsync("old", "newer", _now.AddDays(2), _now, default));
        Assert.NotNull((await Accounts.GetSessionAsync(user, session.Id, default))!.RevokedAt);
        Assert.Null(await Accounts.RotateRefreshTokenAsync("new", "x", _now.AddDays(2), _now, default));

        var other = new SessionRecord(_ids.NewId(), user, "second", _now, _now.AddDays(1), null);
        await Accounts.CreateSessionAsync(other, default);
        Assert.True(await Accounts.RevokeSessionAsync(user, other.Id, _now, default));
        Assert.False(await Accounts.RevokeSessionAsync(user, other.Id, _now, default));
        Assert.Null(await Accounts.RotateRefreshTokenAsync("second", "y", _now.AddDays(2), _now, default));
    }

    [Fact]
    public async Task TicketsAreSingleUseAndExpire()
    {
        var user = await UserAsync();
        await Accounts.CreateTicketAsync("t1", user, "s", _now.AddSeconds(30), default);
        Assert.Equal((user, "s"), await Accounts.ConsumeTicketAsync("t1", _now, default));
        Assert.Null(await Accounts.ConsumeTicketAsync("t1", _now, default));
        await Accounts.CreateTicketAsync("t2", user, "s", _now.AddSeconds(30), default);
        Assert.Null(await Accounts.ConsumeTicketAsync("t2", _now.AddMinutes(1), default));
    }
}

public sealed class SqliteAccountStoreTests : AccountStoreTests<SqliteTestDatabase>;

public sealed class PostgresAccountStoreTests : AccountStoreTests<PostgresTestDatabaseForStores>;
