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
        // Three attempts are counted before any is checked; the fourth is refused without a check.
        for (var i = 0; i < 3; i++) Assert.True(await Accounts.ReserveLoginAttemptAsync(id, 3, _now, default));
        Assert.False(await Accounts.ReserveLoginAttemptAsync(id, 3, _now, default));
        for (var i = 0; i < 3; i++) await Accounts.RecordLoginFailureAsync(id, 3, _now.AddMinutes(5), default);
        var locked = await Accounts.FindUserByEmailAsync("SAME@EXAMPLE.COM", default);
        Assert.Equal(_now.AddMinutes(5).ToUnixTimeMilliseconds(), locked!.LockoutUntil!.Value.ToUnixTimeMilliseconds());
        Assert.False(await Accounts.ReserveLoginAttemptAsync(id, 3, _now.AddMinutes(4), default));
        Assert.True(await Accounts.ReserveLoginAttemptAsync(id, 3, _now.AddMinutes(6), default));
        await Accounts.ResetLoginFailuresAsync(id, default);
        Assert.Null((await Accounts.GetUserAsync(id, default))!.LockoutUntil);
    }

    [Fact]
    public async Task RefreshTokensRotateOnceAndSessionsRevoke()
    {
        var user = await UserAsync();
        var session = new SessionRecord(_ids.NewId(), user, "old", _now, _now.AddDays(1), null);
        await Accounts.CreateSessionAsync(session, default);
        Assert.IsType<RefreshOutcome.Rotated>(await Accounts.RotateRefreshTokenAsync("old", "new", _now.AddDays(2), _now, default));
        Assert.Null(await Accounts.GetSessionAsync(await UserAsync(), session.Id, default));
        // Presenting the rotated-away token again is reuse: it fails and the whole session is revoked.
        Assert.Equal(new RefreshOutcome.Reused(user, session.Id), await Accounts.RotateRefreshTokenAsync("old", "newer", _now.AddDays(2), _now, default));
        Assert.NotNull((await Accounts.GetSessionAsync(user, session.Id, default))!.RevokedAt);
        Assert.IsType<RefreshOutcome.Unknown>(await Accounts.RotateRefreshTokenAsync("new", "x", _now.AddDays(2), _now, default));

        var other = new SessionRecord(_ids.NewId(), user, "second", _now, _now.AddDays(1), null);
        await Accounts.CreateSessionAsync(other, default);
        Assert.True(await Accounts.RevokeSessionAsync(user, other.Id, _now, default));
        Assert.False(await Accounts.RevokeSessionAsync(user, other.Id, _now, default));
        Assert.IsType<RefreshOutcome.Unknown>(await Accounts.RotateRefreshTokenAsync("second", "y", _now.AddDays(2), _now, default));
    }

    [Fact]
    public async Task ApiKeysAreFoundByHashUntilDeletedOrExpiredAndAreCappedPerUser()
    {
        var user = await UserAsync();
        var key = new ApiKeyRecord(_ids.NewId(), user, "ci", "apex_abcdefg", _now, _now.AddDays(1), null);
        Assert.True(await Accounts.CreateApiKeyAsync(key, "hash-1", 2, default));
        Assert.True(await Accounts.CreateApiKeyAsync(key with { Id = _ids.NewId(), ExpiresAt = null }, "hash-2", 2, default));
        Assert.False(await Accounts.CreateApiKeyAsync(key with { Id = _ids.NewId() }, "hash-3", 2, default));
        Assert.Equal(2, (await Accounts.ListApiKeysAsync(user, default)).Count);
        Assert.Empty(await Accounts.ListApiKeysAsync(await UserAsync(), default));

        var found = await Accounts.FindApiKeyAsync("hash-1", _now, default);
        Assert.Equal((key.Id, "free"), (found!.Key.Id, found.Tier));
        Assert.Null(await Accounts.FindApiKeyAsync("hash-1", _now.AddDays(2), default));
        Assert.NotNull(await Accounts.FindApiKeyAsync("hash-2", _now.AddYears(50), default));

        Assert.True(await Accounts.TouchApiKeyAsync(user, key.Id, _now, TimeSpan.FromMinutes(5), default));
        Assert.False(await Accounts.TouchApiKeyAsync(user, key.Id, _now.AddMinutes(1), TimeSpan.FromMinutes(5), default));

        Assert.False(await Accounts.DeleteApiKeyAsync(await UserAsync(), key.Id, _now, default));
        Assert.True(await Accounts.DeleteApiKeyAsync(user, key.Id, _now, default));
        Assert.Null(await Accounts.FindApiKeyAsync("hash-1", _now, default));
        Assert.NotNull((await Accounts.GetSessionAsync(user, key.Id, default))!.RevokedAt);
    }

    [Fact]
    public async Task ExpiredAndRevokedSessionsArePurgedAndLiveOnesKept()
    {
        var user = await UserAsync();
        var expired = new SessionRecord(_ids.NewId(), user, "expired", _now.AddDays(-40), _now.AddDays(-10), null);
        var revoked = new SessionRecord(_ids.NewId(), user, "revoked", _now.AddDays(-5), _now.AddDays(20), null);
        var live = new SessionRecord(_ids.NewId(), user, "live", _now, _now.AddDays(30), null);
        foreach (var session in new[] { expired, revoked, live }) await Accounts.CreateSessionAsync(session, default);
        await Accounts.RevokeSessionAsync(user, revoked.Id, _now.AddDays(-3), default);
        Assert.Equal(2, await Accounts.PurgeSessionsAsync(_now.AddDays(-1), default));
        Assert.Null(await Accounts.GetSessionAsync(user, expired.Id, default));
        Assert.Null(await Accounts.GetSessionAsync(user, revoked.Id, default));
        Assert.NotNull(await Accounts.GetSessionAsync(user, live.Id, default));
        Assert.Equal("free", (await Accounts.GetSessionOwnerAsync(user, live.Id, default))!.Tier);
    }

    [Fact]
    public async Task SecurityEventsAreTheUsersOwnNewestFirst()
    {
        var user = await UserAsync();
        var other = await UserAsync();
        foreach (var kind in new[] { SecurityEventKinds.Login, SecurityEventKinds.LoginFailed, SecurityEventKinds.Logout })
            await Accounts.AddSecurityEventAsync(new SecurityEventRecord(_ids.NewId(), user, kind, _now, "127.0.0.1", null), default);
        await Accounts.AddSecurityEventAsync(new SecurityEventRecord(_ids.NewId(), other, SecurityEventKinds.Login, _now, null, null), default);
        var page = await Accounts.ListSecurityEventsAsync(user, 2, null, default);
        Assert.Equal([SecurityEventKinds.Logout, SecurityEventKinds.LoginFailed], page.Select(e => e.Kind));
        Assert.Equal([SecurityEventKinds.Login], (await Accounts.ListSecurityEventsAsync(user, 10, page[^1].Id, default)).Select(e => e.Kind));
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
