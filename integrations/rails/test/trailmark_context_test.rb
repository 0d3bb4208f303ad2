# The Rails around_action against a real PostgreSQL with Trailmark capture.
require "minitest/autorun"
require "json"
require "securerandom"
require "open3"
require "rack/test"
require "active_record"
require "action_controller"
require_relative "../trailmark_context"

SERVER = ENV.fetch("TRAILMARK_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")
DB_NAME = "tm_rails_#{SecureRandom.hex(5)}"
PG_PARAMS = SERVER.split.map { |kv| kv.split("=", 2) }.to_h

def admin_sql(sql)
  conn = PG.connect(PG_PARAMS.merge("dbname" => "postgres"))
  conn.exec(sql)
ensure
  conn&.close
end

require "pg"
admin_sql(%(CREATE DATABASE "#{DB_NAME}"))
Minitest.after_run do
  ActiveRecord::Base.connection_pool.disconnect!
  admin_sql(%(DROP DATABASE IF EXISTS "#{DB_NAME}" WITH (FORCE)))
end

ActiveRecord::Base.establish_connection(
  adapter: "postgresql",
  host: PG_PARAMS.fetch("host", "127.0.0.1"),
  port: PG_PARAMS.fetch("port", "5432"),
  username: PG_PARAMS.fetch("user", "postgres"),
  database: DB_NAME,
  pool: 3,
)
ActiveRecord::Base.connection.execute(
  "CREATE TABLE customer (id int PRIMARY KEY, name text, price numeric(10,2))",
)
TRAILMARK_BIN = ENV.fetch("TRAILMARK_BIN") { File.expand_path("../../../target/debug/trailmark", __dir__) }
out, err, status = Open3.capture3(
  TRAILMARK_BIN, "capture", "pg", "install",
  "--source", "#{SERVER} dbname=#{DB_NAME}", "--tables", "public.customer"
)
raise "install failed: #{out} #{err}" unless status.success?

class Customer < ActiveRecord::Base
  self.table_name = "customer"
end

User = Struct.new(:id, :email)

class ApplicationController < ActionController::Base
  include TrailmarkContext

  private

  # Stands in for the application's authentication.
  def current_user
    id = request.headers["X-User"]
    id && User.new(id, "#{id}@example.com")
  end
end

class CustomersController < ApplicationController
  def update
    Customer.where(id: params[:id]).update_all(name: params[:name])
    head :ok
  end

  def bulk
    Customer.update_all("price = price + 1")
    ActiveRecord::Base.connection.execute("UPDATE customer SET name = name || '!' WHERE id = 1")
    head :ok
  end

  def failing
    Customer.where(id: 1).update_all(name: "never")
    raise "boom"
  end
end

ROUTES = ActionDispatch::Routing::RouteSet.new
ROUTES.draw do
  put "/customers/:id", to: "customers#update"
  post "/customers/bulk", to: "customers#bulk"
  post "/customers/failing", to: "customers#failing"
end

APP = ActionDispatch::RequestId.new(ROUTES, header: "X-Request-Id")

class TrailmarkContextTest < Minitest::Test
  include Rack::Test::Methods

  # As in a Rails app, the request id middleware runs before the router.
  def app
    APP
  end

  def setup
    conn = ActiveRecord::Base.connection
    clear_outbox(conn)
    conn.execute("DELETE FROM customer")
    conn.execute("INSERT INTO customer SELECT g, 'c' || g, 10 FROM generate_series(1, 5) g")
    clear_outbox(conn)
  end

  # The outbox's guard refuses a delete that is not capture's own (capture
  # version 17): these tests read the outbox in place of a drainer, so they
  # empty it as a drainer does.
  def clear_outbox(conn)
    conn.transaction do
      conn.execute("SET LOCAL trailmark.own_outbox = 'on'")
      conn.execute("DELETE FROM trailmark.outbox")
    end
  end

  def outbox
    ActiveRecord::Base.connection.select_rows(
      "SELECT op, context::text, new_row::text FROM trailmark.outbox ORDER BY id",
    ).map { |op, ctx, row| [op, JSON.parse(ctx), row && JSON.parse(row)] }
  end

  def headers(user)
    h = { "HTTP_USER_AGENT" => "minitest", "REMOTE_ADDR" => "192.0.2.9", "HTTP_X_REQUEST_ID" => "rq-1" }
    h["HTTP_X_USER"] = user if user
    h
  end

  # A connection that found no trailmark.set_context (capture not yet
  # installed) uses set_config until RECHECK_SECONDS have passed, then asks
  # again and finds it (it kept the first answer for its life before).
  def test_a_connection_without_set_context_asks_again_after_the_recheck_interval
    conn = ActiveRecord::Base.connection
    context = { actor_id: "7" }
    now = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    conn.instance_variable_set(:@trailmark_set_context, now + 60)
    assert_match(/\ASELECT set_config\(/, TrailmarkContext.context_sql(conn, context))
    conn.instance_variable_set(:@trailmark_set_context, now - 1)
    assert_match(/\ASELECT trailmark\.set_context\(/, TrailmarkContext.context_sql(conn, context))
    assert_equal true, conn.instance_variable_get(:@trailmark_set_context)
  ensure
    conn.remove_instance_variable(:@trailmark_set_context) if conn.instance_variable_defined?(:@trailmark_set_context)
  end

  def test_update_all_carries_the_signed_in_user_and_request
    put "/customers/2", { name: "Globex" }, headers("42")
    assert_equal 200, last_response.status
    rows = outbox
    assert_equal 1, rows.size
    op, ctx, row = rows.first
    assert_equal "update", op
    assert_equal "Globex", row["name"]
    assert_equal(
      { "actor_id" => "42", "actor_type" => "user", "actor_name" => "42@example.com",
        "ip" => "192.0.2.9", "user_agent" => "minitest", "request_id" => "rq-1" },
      ctx,
    )
  end

  def test_bulk_and_raw_sql_are_attributed
    post "/customers/bulk", {}, headers("7")
    assert_equal 200, last_response.status
    rows = outbox
    assert_equal 6, rows.size
    assert_equal ["7"], rows.map { |_, ctx, _| ctx["actor_id"] }.uniq
  end

  def test_anonymous_then_signed_in_on_the_same_pooled_connection
    put "/customers/1", { name: "anon" }, headers(nil)
    put "/customers/1", { name: "known" }, headers("9")
    put "/customers/1", { name: "anon again" }, headers(nil)
    ids = outbox.map { |_, ctx, _| ctx["actor_id"] }
    assert_equal [nil, "9", nil], ids
  end

  def test_a_failing_request_leaves_nothing
    assert_raises(RuntimeError) { post "/customers/failing", {}, headers("5") }
    assert_empty outbox
    assert_equal "c1", Customer.find(1).name
  end

  def test_concurrent_requests_keep_their_own_actors
    threads = %w[alice bob].map do |user|
      Thread.new do
        session = Rack::Test::Session.new(Rack::MockSession.new(APP))
        10.times { |i| session.put "/customers/#{i % 5 + 1}", { name: user }, headers(user) }
        ActiveRecord::Base.connection_pool.release_connection
      end
    end
    threads.each(&:join)
    rows = outbox
    assert_equal 20, rows.size
    rows.each { |_, ctx, row| assert_equal row["name"], ctx["actor_id"] }
  end
end
